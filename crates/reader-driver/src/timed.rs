//! A card channel that gives up on a card that does not answer.
//!
//! pcsc-lite's `SCardTransmit` has no timeout of its own: it waits for the reader driver, and a
//! driver that waits for the card without one (vpcd does; so can a serial reader whose card
//! keeps asking for more time) holds the caller until the card is pulled. Real CCID readers end
//! a mute exchange by the card's block waiting time, so on them this wrapper only ever sees
//! answers; on the others it is what bounds a command.
//!
//! [`TimedCard`] moves any [`CardChannel`] (a [`crate::PcscCard`] in practice) onto a thread of
//! its own and waits for each answer at most a given time. A command that outlives it ends in
//! [`TransportError::CardUnresponsive`]; the stuck exchange cannot be cancelled, so until its
//! answer arrives (in practice: until the card is pulled) every later command fails the same
//! way at once, and a late answer is thrown away, never taken for a later command's.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::time::Duration;

use card_core::TransportError;
use card_core::channel::CardChannel;
use zeroize::Zeroizing;

/// The default limit for one command: far above any genuine card's time for one command
/// (an SM2 signature on a slow card takes about a second), far below a person's patience.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(15);

type Answer = Result<Vec<u8>, TransportError>;
/// A command on its way to the card thread: it can carry a PIN block, so the copy is wiped
/// when the thread is done with it.
type Outgoing = Zeroizing<Vec<u8>>;

/// A card channel on its own thread, each command bounded in time (see the module's doc).
pub struct TimedCard<C: ChannelInfo> {
    commands: SyncSender<Outgoing>,
    answers: Receiver<Answer>,
    timeout: Duration,
    /// A command is still on the card (it timed out and its answer has not come yet).
    stuck: bool,
    /// What the caller may look at without a command (e.g. the reader's name), taken before
    /// the channel moved to its thread.
    info: C::Info,
}

/// What a wrapped channel lets its owner see without a command.
pub trait ChannelInfo {
    /// Facts about the channel taken before it moves to its thread.
    type Info: Send + 'static;
    /// Take them.
    fn info(&self) -> Self::Info;
}

impl<C> TimedCard<C>
where
    C: CardChannel + ChannelInfo + Send + 'static,
{
    /// Move `card` to its own thread; each command waits at most `timeout` for its answer.
    pub fn new(card: C, timeout: Duration) -> Result<Self, TransportError> {
        let info = card.info();
        let (commands, inbox) = mpsc::sync_channel::<Outgoing>(1);
        let (outbox, answers) = mpsc::sync_channel::<Answer>(1);
        std::thread::Builder::new()
            .name("card-io".into())
            .spawn(move || serve(card, &inbox, &outbox))
            .map_err(|e| TransportError::ReaderUnavailable {
                reader: format!("card thread: {e}"),
            })?;
        Ok(Self {
            commands,
            answers,
            timeout,
            stuck: false,
            info,
        })
    }

    /// What was known of the channel when it was wrapped.
    pub const fn info(&self) -> &C::Info {
        &self.info
    }

    /// The time each command may take.
    pub const fn timeout(&self) -> Duration {
        self.timeout
    }
}

fn serve<C: CardChannel>(mut card: C, inbox: &Receiver<Outgoing>, outbox: &SyncSender<Answer>) {
    while let Ok(command) = inbox.recv() {
        let answer = card.transmit(&command);
        if outbox.send(answer).is_err() {
            break;
        }
    }
}

impl<C> CardChannel for TimedCard<C>
where
    C: CardChannel + ChannelInfo + Send + 'static,
{
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        if self.stuck {
            // The earlier command's answer, if it came, belongs to that command: drop it.
            match self.answers.try_recv() {
                Ok(_) => self.stuck = false,
                Err(mpsc::TryRecvError::Empty) => return Err(TransportError::CardUnresponsive),
                Err(mpsc::TryRecvError::Disconnected) => return Err(TransportError::NoCard),
            }
        }
        if self
            .commands
            .send(Zeroizing::new(command.to_vec()))
            .is_err()
        {
            return Err(TransportError::NoCard);
        }
        match self.answers.recv_timeout(self.timeout) {
            Ok(answer) => answer,
            Err(RecvTimeoutError::Timeout) => {
                self.stuck = true;
                Err(TransportError::CardUnresponsive)
            }
            Err(RecvTimeoutError::Disconnected) => Err(TransportError::NoCard),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Answers each command with its first byte and 90 00, after `delay` for commands whose
    /// first byte is 0xFF.
    struct Slow {
        delay: Duration,
        seen: Arc<AtomicU32>,
    }

    impl ChannelInfo for Slow {
        type Info = &'static str;
        fn info(&self) -> &'static str {
            "slow"
        }
    }

    impl CardChannel for Slow {
        fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
            self.seen.fetch_add(1, Ordering::SeqCst);
            let first = command.first().copied().unwrap_or(0);
            if first == 0xff {
                std::thread::sleep(self.delay);
            }
            Ok(vec![first, 0x90, 0x00])
        }
    }

    fn timed(delay_ms: u64, timeout_ms: u64) -> (TimedCard<Slow>, Arc<AtomicU32>) {
        let seen = Arc::new(AtomicU32::new(0));
        let card = Slow {
            delay: Duration::from_millis(delay_ms),
            seen: Arc::clone(&seen),
        };
        (
            TimedCard::new(card, Duration::from_millis(timeout_ms)).unwrap(),
            seen,
        )
    }

    #[test]
    fn answers_in_time_pass_through_in_order() {
        let (mut t, seen) = timed(0, 2000);
        assert_eq!(*t.info(), "slow");
        for b in 1..=5u8 {
            assert_eq!(t.transmit(&[b]).unwrap(), vec![b, 0x90, 0x00]);
        }
        assert_eq!(seen.load(Ordering::SeqCst), 5);
    }

    #[test]
    fn a_command_past_the_limit_is_unresponsive_and_its_late_answer_is_dropped() {
        let (mut t, seen) = timed(400, 50);
        assert_eq!(t.transmit(&[0xff]), Err(TransportError::CardUnresponsive));
        // While the card still works on it, the next command fails at once without reaching it.
        assert_eq!(t.transmit(&[0x01]), Err(TransportError::CardUnresponsive));
        assert_eq!(seen.load(Ordering::SeqCst), 1);
        // Once the late answer has come, it is thrown away: the next command gets its own.
        std::thread::sleep(Duration::from_millis(700));
        assert_eq!(t.transmit(&[0x02]).unwrap(), vec![0x02, 0x90, 0x00]);
        assert_eq!(seen.load(Ordering::SeqCst), 2);
    }
}
