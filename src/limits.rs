//! Abuse limits: connections per address and per user, and signup/login rates per address
//! and per username (governor's GCRA, keyed). Each limit is a setting; see `.env.example`.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::Config;
use crate::error::Error;

pub struct Limiters {
    signup_per_ip: DefaultKeyedRateLimiter<IpAddr>,
    login_per_ip: DefaultKeyedRateLimiter<IpAddr>,
    login_per_ip_user: DefaultKeyedRateLimiter<(IpAddr, String)>,
    login_per_user: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
    per_ip: DashMap<IpAddr, usize>,
    /// Every open TCP connection per address (HTTP or upgraded), counted at accept.
    tcp_per_ip: DashMap<IpAddr, usize>,
    per_user: DashMap<String, usize>,
    max_per_ip: usize,
    max_per_user: usize,
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN))
}

impl Limiters {
    pub fn new(config: &Config) -> Limiters {
        Limiters {
            signup_per_ip: RateLimiter::keyed(per_minute(config.signups_per_ip)),
            login_per_ip: RateLimiter::keyed(per_minute(config.logins_per_ip)),
            login_per_ip_user: RateLimiter::keyed(per_minute(config.logins_per_ip_user)),
            login_per_user: RateLimiter::keyed(per_minute(config.logins_per_user)),
            clock: DefaultClock::default(),
            per_ip: DashMap::new(),
            tcp_per_ip: DashMap::new(),
            per_user: DashMap::new(),
            max_per_ip: config.max_connections_per_ip,
            max_per_user: config.max_connections_per_user,
        }
    }

    fn limited<K: std::hash::Hash + Eq + Clone>(
        &self,
        limiter: &DefaultKeyedRateLimiter<K>,
        key: &K,
    ) -> Result<(), Error> {
        limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            Error::RateLimited {
                retry_after: wait.as_secs() + 1,
            }
        })
    }

    /// # Errors
    /// `RateLimited` when this address signed up too often lately.
    pub fn signup(&self, ip: IpAddr) -> Result<(), Error> {
        self.limited(&self.signup_per_ip, &ip)
    }

    /// Per address (spraying many names), tightly per address and username (guessing one
    /// password), and loosely per username from everywhere (many addresses guessing). The
    /// per-username limit is loose on purpose: a tight one let ten wrong passwords from one
    /// address lock the owner out from every address. The per-username bucket is only
    /// charged once the tighter ones let the attempt through, so an address that is already
    /// held back does not drain it.
    ///
    /// # Errors
    /// `RateLimited`.
    pub fn login(&self, ip: IpAddr, username: &str) -> Result<(), Error> {
        self.limited(&self.login_per_ip, &ip)?;
        self.limited(&self.login_per_ip_user, &(ip, username.to_owned()))?;
        self.limited(&self.login_per_user, &username.to_owned())
    }

    /// Drops rate-limit state of keys not seen lately, so memory does not grow with every
    /// address that ever connected.
    pub fn sweep(&self) {
        self.signup_per_ip.retain_recent();
        self.login_per_ip.retain_recent();
        self.login_per_ip_user.retain_recent();
        self.login_per_user.retain_recent();
    }

    /// Counts a WebSocket (or SSE stream) from `ip` for as long as the guard lives.
    ///
    /// # Errors
    /// `TooManyConnections` past `MAX_CONNECTIONS_PER_IP`.
    pub fn connect_ip(self: &Arc<Self>, ip: IpAddr) -> Result<IpGuard, Error> {
        self.count_ip(ip, false, self.max_per_ip)
    }

    /// Counts a TCP connection from `ip`, from its accept to its close. An address may hold
    /// its `MAX_CONNECTIONS_PER_IP` sockets and streams plus [`TCP_HEADROOM`] connections
    /// for plain requests; past that, connections are closed at accept, before anything is
    /// read, so one address cannot take the descriptors other clients need.
    ///
    /// # Errors
    /// `TooManyConnections`.
    pub fn connect_tcp(self: &Arc<Self>, ip: IpAddr) -> Result<IpGuard, Error> {
        self.count_ip(ip, true, self.max_per_ip.saturating_add(TCP_HEADROOM))
    }

    fn count_ip(self: &Arc<Self>, ip: IpAddr, tcp: bool, max: usize) -> Result<IpGuard, Error> {
        let map = if tcp { &self.tcp_per_ip } else { &self.per_ip };
        let mut count = map.entry(ip).or_insert(0);
        if *count >= max {
            return Err(Error::TooManyConnections);
        }
        *count += 1;
        Ok(IpGuard {
            limits: self.clone(),
            ip,
            tcp,
        })
    }

    /// Counts a signed-in connection of `user` for as long as the guard lives.
    ///
    /// # Errors
    /// `TooManyConnections` past `MAX_CONNECTIONS_PER_USER`.
    pub fn connect_user(self: &Arc<Self>, user: &str) -> Result<UserGuard, Error> {
        let mut count = self.per_user.entry(user.to_owned()).or_insert(0);
        if *count >= self.max_per_user {
            return Err(Error::TooManyConnections);
        }
        *count += 1;
        Ok(UserGuard {
            limits: self.clone(),
            user: user.to_owned(),
        })
    }
}

/// Connections an address may hold beyond `MAX_CONNECTIONS_PER_IP`, for plain HTTP requests.
pub const TCP_HEADROOM: usize = 64;

pub struct IpGuard {
    limits: Arc<Limiters>,
    ip: IpAddr,
    tcp: bool,
}

impl Drop for IpGuard {
    fn drop(&mut self) {
        let map = if self.tcp {
            &self.limits.tcp_per_ip
        } else {
            &self.limits.per_ip
        };
        map.remove_if_mut(&self.ip, |_, n| {
            *n -= 1;
            *n == 0
        });
    }
}

pub struct UserGuard {
    limits: Arc<Limiters>,
    user: String,
}

impl Drop for UserGuard {
    fn drop(&mut self) {
        self.limits.per_user.remove_if_mut(&self.user, |_, n| {
            *n -= 1;
            *n == 0
        });
    }
}
