//! Which server a request tries next: among those it has not tried and passive health has
//! not taken out, each in turn (`round_robin`) or the one with the fewest requests in flight,
//! in turn among equals (`least_conn`). When every server is out, the first try goes to one
//! anyway (as nginx does: a wrong "down" costs one attempt, "no live upstreams" costs all).

use crate::config::Balance;

/// What the balancer knows of one server.
#[derive(Debug, Clone, Copy)]
pub(super) struct Candidate {
    pub tried: bool,
    pub up: bool,
    pub busy: usize,
}

/// The index of the server to try, from the rotation position `turn`; `first`: the
/// request's first try. `None` when none is left.
pub(super) fn pick(
    balance: Balance,
    servers: &[Candidate],
    turn: usize,
    first: bool,
) -> Option<usize> {
    let n = servers.len();
    let order = (0..n).map(|i| (turn + i) % n);
    let untried = |need_up: bool| {
        order
            .clone()
            .filter(move |&i| !servers[i].tried && (servers[i].up || !need_up))
    };
    let choose = |need_up: bool| match balance {
        Balance::RoundRobin => untried(need_up).next(),
        // `min_by_key` keeps the first of equals: the one next in turn.
        Balance::LeastConn => untried(need_up).min_by_key(|&i| servers[i].busy),
    };
    choose(true).or_else(|| if first { choose(false) } else { None })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(busy: usize) -> Candidate {
        Candidate {
            tried: false,
            up: true,
            busy,
        }
    }

    #[test]
    fn round_robin_takes_turns_and_skips_the_tried_and_the_down() {
        let servers = [up(5), up(0), up(0)];
        let picks: Vec<_> = (0..4)
            .map(|turn| pick(Balance::RoundRobin, &servers, turn, true))
            .collect();
        assert_eq!(picks, [Some(0), Some(1), Some(2), Some(0)]);
        let mut servers = servers;
        servers[1].up = false;
        servers[2].tried = true;
        assert_eq!(pick(Balance::RoundRobin, &servers, 1, false), Some(0));
        servers[0].tried = true;
        assert_eq!(pick(Balance::RoundRobin, &servers, 1, false), None);
    }

    #[test]
    fn least_conn_prefers_the_idle_server_then_takes_turns() {
        let servers = [up(3), up(0), up(1)];
        for turn in 0..3 {
            assert_eq!(pick(Balance::LeastConn, &servers, turn, true), Some(1));
        }
        let even = [up(1), up(1), up(1)];
        assert_eq!(pick(Balance::LeastConn, &even, 2, true), Some(2));
    }

    #[test]
    fn when_all_are_down_only_the_first_try_goes_anyway() {
        let mut servers = [up(0), up(0)];
        servers.iter_mut().for_each(|s| s.up = false);
        assert_eq!(pick(Balance::RoundRobin, &servers, 1, true), Some(1));
        assert_eq!(pick(Balance::LeastConn, &servers, 0, true), Some(0));
        assert_eq!(pick(Balance::RoundRobin, &servers, 1, false), None);
    }
}
