//! Bet names as a player types them (`pass`, `come-odds:6`, `hard:8`) and
//! back, so the CLI, its `--json` output and its error messages use one
//! spelling.
//!
//! Names are kebab-case; `_` is accepted for `-` and case is ignored, so
//! `Dont_Pass` works too. Kinds that carry a number take it after a colon.
//! Parsing checks the number against the kind (a place bet on 7 is refused
//! here, with the valid numbers, rather than by the chain after a round trip).

use crate::app::craps::{BetKind, HARD_NUMBERS, POINT_NUMBERS};

/// Every bet a player can name, for help and error messages.
pub const BET_NAMES: &str = "pass, dont-pass, pass-odds, dont-pass-odds, come, dont-come, \
come-odds:N, dont-come-odds:N, field, place:N, hard:N, any-seven, any-craps, yo \
(N: 4, 5, 6, 8, 9 or 10; hard:N takes 4, 6, 8 or 10)";

/// Longest bet name accepted: the longest valid one is 17 characters. The cap
/// keeps error messages short when a script passes something else entirely.
pub const MAX_BET_NAME_CHARS: usize = 32;

/// Why a bet name was refused. The message always lists what is valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadBet {
    #[error("unknown bet {name:?}; valid bets: {BET_NAMES}")]
    Unknown { name: String },
    #[error("bet {name:?} needs a number, e.g. {example}; valid bets: {BET_NAMES}")]
    MissingNumber { name: String, example: String },
    #[error("bet {name:?} takes no number; valid bets: {BET_NAMES}")]
    UnexpectedNumber { name: String },
    #[error("bet {name:?}: the number must be one of {valid}")]
    BadNumber { name: String, valid: String },
}

/// Parses a bet name. Come points (`come-point:N`, `dont-come-point:N`) are
/// accepted because a player may want to take a don't-come point down; the
/// chain refuses to have them placed directly.
pub fn parse_bet(text: &str) -> Result<BetKind, BadBet> {
    let shown: String = text.trim().chars().take(MAX_BET_NAME_CHARS).collect();
    let normal = shown.to_ascii_lowercase().replace('_', "-");
    let (base, number) = match normal.split_once(':') {
        Some((b, n)) => (b.trim(), Some(n.trim())),
        None => (normal.as_str(), None),
    };
    let unknown = || BadBet::Unknown {
        name: shown.clone(),
    };
    // Kinds without a number.
    let plain = match base {
        "pass" => Some(BetKind::Pass),
        "dont-pass" => Some(BetKind::DontPass),
        "pass-odds" => Some(BetKind::PassOdds),
        "dont-pass-odds" => Some(BetKind::DontPassOdds),
        "come" => Some(BetKind::Come),
        "dont-come" => Some(BetKind::DontCome),
        "field" => Some(BetKind::Field),
        "any-seven" => Some(BetKind::AnySeven),
        "any-craps" => Some(BetKind::AnyCraps),
        "yo" => Some(BetKind::Yo),
        _ => None,
    };
    if let Some(kind) = plain {
        if number.is_some() {
            return Err(BadBet::UnexpectedNumber { name: shown });
        }
        return Ok(kind);
    }
    let make: fn(u8) -> BetKind = match base {
        "come-odds" => |point| BetKind::ComeOdds { point },
        "dont-come-odds" => |point| BetKind::DontComeOdds { point },
        "come-point" => |point| BetKind::ComePoint { point },
        "dont-come-point" => |point| BetKind::DontComePoint { point },
        "place" => |number| BetKind::Place { number },
        "hard" => |number| BetKind::Hard { number },
        _ => return Err(unknown()),
    };
    let valid = if base == "hard" {
        list(&HARD_NUMBERS)
    } else {
        list(&POINT_NUMBERS)
    };
    let Some(number) = number.filter(|n| !n.is_empty()) else {
        return Err(BadBet::MissingNumber {
            example: format!("{base}:{}", if base == "hard" { 8 } else { 6 }),
            name: shown,
        });
    };
    let kind = number
        .parse::<u8>()
        .ok()
        .map(make)
        .filter(BetKind::is_valid)
        .ok_or(BadBet::BadNumber { name: shown, valid })?;
    Ok(kind)
}

/// The name [`parse_bet`] reads back (`come-odds:6`).
pub fn bet_name(kind: &BetKind) -> String {
    let base = kind.name().replace('_', "-");
    match kind.number() {
        Some(n) => format!("{base}:{n}"),
        None => base,
    }
}

fn list(numbers: &[u8]) -> String {
    let v: Vec<String> = numbers.iter().map(u8::to_string).collect();
    v.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind a table can hold, with every valid number.
    fn all_kinds() -> Vec<BetKind> {
        let mut v = vec![
            BetKind::Pass,
            BetKind::DontPass,
            BetKind::PassOdds,
            BetKind::DontPassOdds,
            BetKind::Come,
            BetKind::DontCome,
            BetKind::Field,
            BetKind::AnySeven,
            BetKind::AnyCraps,
            BetKind::Yo,
        ];
        for p in POINT_NUMBERS {
            v.push(BetKind::ComePoint { point: p });
            v.push(BetKind::DontComePoint { point: p });
            v.push(BetKind::ComeOdds { point: p });
            v.push(BetKind::DontComeOdds { point: p });
            v.push(BetKind::Place { number: p });
        }
        for n in HARD_NUMBERS {
            v.push(BetKind::Hard { number: n });
        }
        v
    }

    #[test]
    fn every_kind_round_trips() {
        for kind in all_kinds() {
            let name = bet_name(&kind);
            assert!(name.len() <= MAX_BET_NAME_CHARS, "{name}");
            assert_eq!(parse_bet(&name), Ok(kind), "{name}");
        }
        assert_eq!(all_kinds().len(), 10 + 6 * 5 + 4);
    }

    #[test]
    fn the_documented_spellings() {
        assert_eq!(parse_bet("pass"), Ok(BetKind::Pass));
        assert_eq!(parse_bet("dont-pass"), Ok(BetKind::DontPass));
        assert_eq!(parse_bet(" Dont_Pass "), Ok(BetKind::DontPass));
        assert_eq!(parse_bet("come-odds:6"), Ok(BetKind::ComeOdds { point: 6 }));
        assert_eq!(
            parse_bet("dont-come-odds:4"),
            Ok(BetKind::DontComeOdds { point: 4 })
        );
        assert_eq!(parse_bet("place:6"), Ok(BetKind::Place { number: 6 }));
        assert_eq!(parse_bet("hard:8"), Ok(BetKind::Hard { number: 8 }));
        assert_eq!(parse_bet("any-seven"), Ok(BetKind::AnySeven));
        assert_eq!(parse_bet("any-craps"), Ok(BetKind::AnyCraps));
        assert_eq!(parse_bet("yo"), Ok(BetKind::Yo));
        assert_eq!(parse_bet("PLACE: 8"), Ok(BetKind::Place { number: 8 }));
    }

    #[test]
    fn refusals_name_the_problem_and_the_valid_bets() {
        let e = parse_bet("passs").unwrap_err();
        assert!(matches!(e, BadBet::Unknown { .. }));
        let text = e.to_string();
        assert!(text.contains("\"passs\""), "{text}");
        assert!(
            text.contains("dont-pass") && text.contains("hard:N"),
            "{text}"
        );

        for (input, want_valid) in [
            ("place:7", "4, 5, 6, 8, 9, 10"),
            ("place:x", "4, 5, 6, 8, 9, 10"),
            ("come-odds:12", "4, 5, 6, 8, 9, 10"),
            ("hard:5", "4, 6, 8, 10"),
            ("hard:300", "4, 6, 8, 10"),
        ] {
            let e = parse_bet(input).unwrap_err();
            assert!(
                matches!(&e, BadBet::BadNumber { valid, .. } if valid == want_valid),
                "{input}: {e}"
            );
        }
        assert!(matches!(
            parse_bet("place"),
            Err(BadBet::MissingNumber { .. })
        ));
        assert!(matches!(
            parse_bet("hard:"),
            Err(BadBet::MissingNumber { ref example, .. }) if example == "hard:8"
        ));
        assert!(matches!(
            parse_bet("field:2"),
            Err(BadBet::UnexpectedNumber { .. })
        ));
        assert!(matches!(parse_bet(""), Err(BadBet::Unknown { .. })));
        // A long argument is cut in the message.
        let long = "x".repeat(10_000);
        let text = parse_bet(&long).unwrap_err().to_string();
        assert!(text.len() < 400, "{}", text.len());
    }
}
