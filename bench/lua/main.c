/* The benchmarks' Lua program: Lua 5.4.7 (lua-src crate) with this driver runs bench.lua. */
#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"
int main(int argc, char **argv) {
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    int rc = argc > 1 ? luaL_dofile(L, argv[1]) : 1;
    if (rc) fprintf(stderr, "%s\n", lua_tostring(L, -1));
    lua_close(L);
    return rc;
}
