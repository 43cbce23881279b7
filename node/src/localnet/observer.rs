//! The localnet's view of the game, shared by every simulated player: one
//! task polls the roll clock (`GET /api/v1/game`), the localnet's tables
//! (`GET /api/v1/tables/{id}`: phase, limits, every spot and rail) and their
//! new rolls (`GET /api/v1/tables/{id}/rolls?since=`), and publishes a
//! [`GameSnapshot`] the players decide from.
//!
//! Why one observer rather than each player asking before each bet: at 200
//! bets per second that would double the HTTP load on the validators and
//! measure the API instead of consensus. A snapshot at most one poll old is
//! what a real client sees too; its staleness shows up as rejections
//! (`betting_closed`, `no_flat_bet`, ...) that the run counts by reason.
//!
//! The observer asks a different validator on every poll (players bet
//! through all of them too). A lagging validator can make the snapshot step
//! back a block; [`RollFeed`] still hands out each roll once, in order.
//!
//! It also keeps the live roll figures of the progress line: rolls seen, the
//! last roll, and chips won by players since the line last read them.

use super::client::{ClientError, NodeClient};
use super::cluster::join_all;
use super::strategy::Seat;
use crate::api::{Roll, TableDetailView, TableRoll};
use crate::app::craps::BetResult;
use crate::play::watch::RollFeed;
use bitcraps_crypto::PublicKey;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// Poll interval with a few tables.
pub const OBSERVE_MIN_MS: u64 = 100;
/// Added per table, so many tables do not multiply the request rate: each
/// poll costs one request per table plus one per table with new rolls.
pub const OBSERVE_MS_PER_TABLE: u64 = 25;

/// What the players see.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GameSnapshot {
    /// The chain takes bets (the roll clock is not waiting for dice).
    pub betting_open: bool,
    /// The localnet's tables, by id.
    pub tables: BTreeMap<u64, TableDetailView>,
}

impl GameSnapshot {
    /// What `player` sees at `table`; `None` before the table was observed.
    pub fn seat(&self, table: u64, player: &PublicKey, player_hex: &str) -> Option<Seat> {
        let t = self.tables.get(&table)?;
        Some(Seat {
            phase: t.table.phase,
            min_bet: t.table.min_bet,
            max_bet: t.table.max_bet,
            closed: t.table.closed,
            betting_open: self.betting_open,
            spots: t
                .bets
                .iter()
                .filter(|b| b.player == *player)
                .map(|b| (b.kind, b.stake))
                .collect(),
            rail: t
                .rails
                .iter()
                .find(|r| r.player == player_hex)
                .map_or(0, |r| r.amount),
        })
    }
}

/// Live roll figures for the progress line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RollStats {
    /// Table rolls observed since the run started.
    pub rolls: u64,
    /// The most recent roll (by height, then table id) and its table.
    pub last: Option<(u64, Roll)>,
    last_key: (u64, u64),
    /// Chips won by players (winnings, stakes not included) since
    /// [`RollStats::take_window`].
    pub won_window: u64,
    /// Settlements with a decision (won, lost, push) observed.
    pub decided: u64,
}

impl RollStats {
    /// Counts one observed roll.
    pub fn record(&mut self, r: &TableRoll) {
        self.rolls += 1;
        let key = (r.height, r.table);
        if self.last.is_none() || key >= self.last_key {
            self.last = Some((r.table, r.outcome.roll));
            self.last_key = key;
        }
        for s in &r.outcome.settlements {
            match s.result {
                BetResult::Won { winnings } => {
                    self.won_window = self.won_window.saturating_add(winnings);
                    self.decided += 1;
                }
                BetResult::Lost | BetResult::Push => self.decided += 1,
                BetResult::Moved { .. } | BetResult::Returned => {}
            }
        }
    }

    /// Chips won since the last call.
    pub fn take_window(&mut self) -> u64 {
        std::mem::take(&mut self.won_window)
    }
}

/// Where the observer publishes.
#[derive(Debug, Default)]
pub struct SharedGame {
    pub snapshot: Mutex<Arc<GameSnapshot>>,
    pub rolls: Mutex<RollStats>,
}

impl SharedGame {
    /// The latest snapshot (cheap: an `Arc` clone).
    pub fn snapshot(&self) -> Arc<GameSnapshot> {
        Arc::clone(&lock(&self.snapshot))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Polls the game on the validators and publishes into a [`SharedGame`].
#[derive(Debug)]
pub struct Observer {
    view: Arc<SharedGame>,
    clients: Vec<NodeClient>,
    feeds: Vec<RollFeed>,
    /// Index of the validator asked next.
    node: usize,
    interval_ms: u64,
}

impl Observer {
    /// Observes `tables` (freshly opened: their rolls are followed from the
    /// first) through `clients`.
    pub fn new(view: Arc<SharedGame>, clients: Vec<NodeClient>, tables: &[u64]) -> Observer {
        let n = u64::try_from(tables.len()).unwrap_or(u64::MAX);
        Observer {
            view,
            clients,
            feeds: tables.iter().map(|t| RollFeed::new(*t, 0)).collect(),
            node: 0,
            interval_ms: OBSERVE_MIN_MS.max(n.saturating_mul(OBSERVE_MS_PER_TABLE)),
        }
    }

    pub fn interval_ms(&self) -> u64 {
        self.interval_ms
    }

    /// One poll of one validator: the clock, every table, new rolls. The
    /// snapshot is replaced only when every read succeeded, so players never
    /// see a half-updated table set.
    pub async fn poll_once(&mut self) -> Result<(), ClientError> {
        let Some(client) = self.clients.get(self.node % self.clients.len().max(1)) else {
            return Ok(());
        };
        self.node = (self.node + 1) % self.clients.len().max(1);
        let client = client.clone();
        let game = client.game().await?;
        let details = join_all(self.feeds.iter().map(|f| client.table(f.table()))).await;
        let mut tables = BTreeMap::new();
        for d in details {
            if let Some(d) = d? {
                tables.insert(d.table.id, d);
            }
        }
        *lock(&self.view.snapshot) = Arc::new(GameSnapshot {
            betting_open: game.betting_open,
            tables,
        });
        // New rolls, only where the table says there are some (saves a
        // request per table per poll).
        let snapshot = self.view.snapshot();
        for feed in &mut self.feeds {
            let behind = snapshot
                .tables
                .get(&feed.table())
                .is_some_and(|t| t.table.rolls >= feed.next_seq());
            if !behind {
                continue;
            }
            if let Some(rolls) = feed.poll(&client).await? {
                let mut stats = lock(&self.view.rolls);
                for r in &rolls {
                    stats.record(r);
                }
            }
        }
        Ok(())
    }

    /// Polls until `stop` fires.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            // A validator that does not answer is skipped until the next
            // turn; the snapshot stays as it was.
            tokio::select! {
                _ = self.poll_once() => {}
                _ = stop.changed() => return,
            }
            tokio::select! {
                () = tokio::time::sleep(std::time::Duration::from_millis(self.interval_ms)) => {}
                _ = stop.changed() => return,
            }
        }
    }
}

/// Most rolls per table [`roll_history`] reads (a day of rolls at one a
/// second): bounds the end-of-run summary on a very long run.
pub const MAX_HISTORY_ROLLS: u64 = 100_000;

/// Totals of the localnet tables' roll history up to a height.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryTotals {
    /// Table rolls (one per table per beacon round in which it had bets).
    pub rolls: u64,
    /// Settlements that decided a bet: won, lost or push.
    pub settled: u64,
    pub won: u64,
    pub lost: u64,
    pub pushed: u64,
    /// Winnings paid to players (stakes not included).
    pub chips_won: u64,
    /// Some table had more than [`MAX_HISTORY_ROLLS`] rolls: totals are partial.
    pub truncated: bool,
}

impl HistoryTotals {
    fn add(&mut self, r: &TableRoll) {
        self.rolls += 1;
        for s in &r.outcome.settlements {
            match s.result {
                BetResult::Won { winnings } => {
                    self.won += 1;
                    self.chips_won = self.chips_won.saturating_add(winnings);
                }
                BetResult::Lost => self.lost += 1,
                BetResult::Push => self.pushed += 1,
                BetResult::Moved { .. } | BetResult::Returned => continue,
            }
            self.settled += 1;
        }
    }
}

/// Reads every roll of `tables` applied at or below `max_height` from
/// `client` (a node that has reached `max_height`), so the totals describe
/// exactly the chain whose state roots were compared.
pub async fn roll_history(
    client: &NodeClient,
    tables: &[u64],
    max_height: u64,
) -> Result<HistoryTotals, ClientError> {
    let mut totals = HistoryTotals::default();
    for &table in tables {
        let mut feed = RollFeed::new(table, 0);
        // Bounded: each turn advances the feed or ends the table.
        loop {
            let rolls = feed.poll(client).await?.unwrap_or_default();
            let got = rolls.len();
            let mut past_end = false;
            for r in rolls {
                if r.height > max_height {
                    past_end = true;
                    break;
                }
                totals.add(&r);
            }
            if past_end || got == 0 {
                break;
            }
            if feed.next_seq() > MAX_HISTORY_ROLLS {
                totals.truncated = true;
                break;
            }
        }
    }
    Ok(totals)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{BetView, Phase, RailView, TableView};
    use crate::app::craps::{BetKind, RollOutcome, Settlement};
    use bitcraps_crypto::Keypair;

    fn detail(me: PublicKey, other: PublicKey) -> TableDetailView {
        TableDetailView {
            table: TableView {
                id: 2,
                house: "h".into(),
                min_bet: 1,
                max_bet: 100,
                bankroll: 1_000,
                reserved: 0,
                phase: Phase::Point(5),
                closed: false,
                rolls: 3,
                last_roll: None,
                bets_in_play: 2,
                stakes: 15,
            },
            bets: vec![
                BetView {
                    player: me,
                    kind: BetKind::Pass,
                    stake: 10,
                },
                BetView {
                    player: other,
                    kind: BetKind::Field,
                    stake: 5,
                },
            ],
            rails: vec![RailView {
                player: me.to_hex(),
                amount: 40,
            }],
        }
    }

    #[test]
    fn a_seat_shows_only_the_players_own_spots_and_rail() {
        let me = Keypair::from_seed(&[1; 32]).public();
        let other = Keypair::from_seed(&[2; 32]).public();
        let snap = GameSnapshot {
            betting_open: true,
            tables: BTreeMap::from([(2, detail(me, other))]),
        };
        let seat = snap.seat(2, &me, &me.to_hex()).unwrap();
        assert_eq!(seat.spots, vec![(BetKind::Pass, 10)]);
        assert_eq!(seat.rail, 40);
        assert_eq!(seat.phase, Phase::Point(5));
        assert!(seat.betting_open);
        let theirs = snap.seat(2, &other, &other.to_hex()).unwrap();
        assert_eq!(theirs.spots, vec![(BetKind::Field, 5)]);
        assert_eq!(theirs.rail, 0);
        assert!(snap.seat(3, &me, &me.to_hex()).is_none());
    }

    #[test]
    fn roll_stats_count_decisions_and_winnings() {
        let me = Keypair::from_seed(&[1; 32]).public();
        let s = |kind, result| Settlement {
            player: me,
            kind,
            stake: 10,
            result,
            credited: 0,
        };
        let roll = |table, height, d1, d2, settlements| TableRoll {
            table,
            round: height - 1,
            height,
            seq: 1,
            outcome: RollOutcome {
                roll: Roll { d1, d2 },
                phase_before: Phase::ComeOut,
                phase_after: Phase::ComeOut,
                settlements,
            },
        };
        let mut st = RollStats::default();
        st.record(&roll(
            1,
            10,
            3,
            4,
            vec![
                s(BetKind::Pass, BetResult::Won { winnings: 10 }),
                s(BetKind::Field, BetResult::Lost),
                s(
                    BetKind::Come,
                    BetResult::Moved {
                        to: BetKind::ComePoint { point: 4 },
                    },
                ),
                s(BetKind::DontPass, BetResult::Push),
                s(BetKind::ComeOdds { point: 4 }, BetResult::Returned),
            ],
        ));
        assert_eq!(st.rolls, 1);
        assert_eq!(st.decided, 3);
        assert_eq!(st.last, Some((1, Roll { d1: 3, d2: 4 })));
        // An older roll of another table does not become "the last".
        st.record(&roll(2, 9, 1, 1, vec![]));
        assert_eq!(st.last, Some((1, Roll { d1: 3, d2: 4 })));
        st.record(&roll(2, 10, 6, 6, vec![]));
        assert_eq!(st.last, Some((2, Roll { d1: 6, d2: 6 })));
        assert_eq!(st.take_window(), 10);
        assert_eq!(st.take_window(), 0);
        assert_eq!(st.rolls, 3);

        let mut h = HistoryTotals::default();
        h.add(&roll(
            1,
            10,
            6,
            6,
            vec![
                s(BetKind::Field, BetResult::Won { winnings: 30 }),
                s(BetKind::DontPass, BetResult::Push),
                s(BetKind::Pass, BetResult::Lost),
                s(BetKind::ComeOdds { point: 4 }, BetResult::Returned),
            ],
        ));
        h.add(&roll(1, 11, 1, 2, vec![]));
        assert_eq!(
            h,
            HistoryTotals {
                rolls: 2,
                settled: 3,
                won: 1,
                lost: 1,
                pushed: 1,
                chips_won: 30,
                truncated: false,
            }
        );
    }
}
