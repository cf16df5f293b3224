local function fib(n) if n < 2 then return n end return fib(n - 1) + fib(n - 2) end
local t = {} for i = 1, 1000 do t[i] = (i * 7919) % 1009 end table.sort(t)
print(string.format("fib(25)=%d sorted[500]=%d %s", fib(25), t[500], _VERSION))
