//! Debian package versions: dpkg's ordering, the upstream part, and whether a user's version
//! spec (`10.0`, `7.2.19`, a full Debian version) selects a version. Pure.

/// dpkg's version ordering (epoch, upstream, revision; `~` sorts before anything).
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    fn split(v: &str) -> (u64, &str, &str) {
        let (epoch, rest) = match v.split_once(':') {
            Some((e, r)) if e.chars().all(|c| c.is_ascii_digit()) => (e.parse().unwrap_or(0), r),
            _ => (0, v),
        };
        match rest.rsplit_once('-') {
            Some((u, r)) => (epoch, u, r),
            None => (epoch, rest, ""),
        }
    }
    fn order(c: Option<char>) -> i32 {
        match c {
            None => 0,
            Some('~') => -1,
            Some(c) if c.is_ascii_alphabetic() => c as i32,
            Some(c) => c as i32 + 256,
        }
    }
    fn part(a: &str, b: &str) -> std::cmp::Ordering {
        let (mut a, mut b) = (a, b);
        while !a.is_empty() || !b.is_empty() {
            // Non-digit prefix.
            let na = a.find(|c: char| c.is_ascii_digit()).unwrap_or(a.len());
            let nb = b.find(|c: char| c.is_ascii_digit()).unwrap_or(b.len());
            let (sa, sb) = (&a[..na], &b[..nb]);
            let (mut ia, mut ib) = (sa.chars(), sb.chars());
            loop {
                let (ca, cb) = (ia.next(), ib.next());
                if ca.is_none() && cb.is_none() {
                    break;
                }
                let o = order(ca).cmp(&order(cb));
                if o.is_ne() {
                    return o;
                }
            }
            a = &a[na..];
            b = &b[nb..];
            let da = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
            let db = b.find(|c: char| !c.is_ascii_digit()).unwrap_or(b.len());
            let xa: u128 = a[..da].parse().unwrap_or(0);
            let xb: u128 = b[..db].parse().unwrap_or(0);
            if xa != xb {
                return xa.cmp(&xb);
            }
            a = &a[da..];
            b = &b[db..];
        }
        std::cmp::Ordering::Equal
    }
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| part(ua, ub))
        .then_with(|| part(ra, rb))
}

/// The upstream part of a Debian version: `1:10.0.6+ds-0+deb13u2` → `10.0.6`.
pub fn upstream(version: &str) -> &str {
    let v = version.split_once(':').map_or(version, |(_, r)| r);
    let v = v.rsplit_once('-').map_or(v, |(u, _)| u);
    v.split(['+', '~']).next().unwrap_or(v)
}

/// Does a user's version spec (`10.0`, `7.2.19`, a full Debian version) select `version`?
pub fn version_matches(spec: &str, version: &str) -> bool {
    let no_epoch = version.split_once(':').map_or(version, |(_, r)| r);
    if spec == version || spec == no_epoch {
        return true;
    }
    let up = upstream(version);
    up == spec || (up.starts_with(spec) && up[spec.len()..].starts_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering::*;

    #[test]
    fn dpkg_ordering() {
        assert_eq!(
            compare_versions("1:7.2+dfsg-7", "1:10.0.6+ds-0+deb13u2"),
            Less
        );
        assert_eq!(
            compare_versions("1:10.0.6+ds-0+deb13u2~bpo12+1", "1:10.0.6+ds-0+deb13u2"),
            Less
        );
        assert_eq!(compare_versions("2:1.0", "1:9.9"), Greater);
        assert_eq!(compare_versions("1.0~rc1", "1.0"), Less);
        assert_eq!(compare_versions("1.0a", "1.0"), Greater);
        assert_eq!(compare_versions("1.0-1", "1.0-1"), Equal);
        assert_eq!(
            compare_versions("7.2+dfsg-7+deb12u18+b3", "7.2+dfsg-7+deb12u18"),
            Greater
        );
    }

    #[test]
    fn version_specs() {
        let v = "1:10.0.6+ds-0+deb13u2";
        assert_eq!(upstream(v), "10.0.6");
        assert!(version_matches("10.0", v));
        assert!(version_matches("10", v));
        assert!(version_matches("10.0.6", v));
        assert!(version_matches("10.0.6+ds-0+deb13u2", v));
        assert!(!version_matches("10.0.60", v));
        assert!(!version_matches("1", v));
        assert!(!version_matches("7.2", v));
        assert!(version_matches("7.2", "1:7.2+dfsg-7+deb12u18"));
    }
}
