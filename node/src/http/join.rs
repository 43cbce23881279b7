//! Waits for many futures at once inside the calling task, for
//! `POST /api/v1/txs`.
//!
//! Why not one task per transaction: the batch route exists to save
//! per-transaction overhead, and spawning would add a task hand-off per
//! transaction, lose the request's tracing span unless re-attached, and let
//! transactions of one account reach admission out of order. Here:
//!
//! * the first poll polls every future once, in list order (so each
//!   `submit` queues its transaction for admission in the order the client
//!   sent them);
//! * after that, each future has its own waker and only futures that were
//!   woken are polled again, so a batch of N costs O(N) polls, not O(N^2);
//! * everything runs in the request's task, inside its span.
//!
//! Memory is bounded by the batch: one waker and one slot per future, and
//! the ready list never holds an index twice.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

/// Resolves to every future's output, in the order of `futures`.
pub(crate) fn join_all_in_order<F>(futures: Vec<F>) -> JoinAll<F>
where
    F: Future + Unpin,
{
    let n = futures.len();
    let ready = Arc::new(Mutex::new(Ready {
        queue: (0..n).collect(),
        queued: vec![true; n],
        parent: None,
    }));
    let wakers = (0..n)
        .map(|index| {
            Waker::from(Arc::new(SlotWaker {
                index,
                ready: Arc::clone(&ready),
            }))
        })
        .collect();
    JoinAll {
        slots: futures.into_iter().map(Slot::Running).collect(),
        wakers,
        ready,
        scratch: Vec::with_capacity(n),
        remaining: n,
    }
}

/// See [`join_all_in_order`].
pub(crate) struct JoinAll<F: Future> {
    slots: Vec<Slot<F>>,
    /// `wakers[i]` marks slot `i` ready and wakes the task.
    wakers: Vec<Waker>,
    ready: Arc<Mutex<Ready>>,
    /// The indices being polled this round (kept to reuse its allocation).
    scratch: Vec<usize>,
    /// Slots still running.
    remaining: usize,
}

// Nothing in a `JoinAll` is ever pinned in place: the futures are `Unpin`
// (polled through `Pin::new`) and outputs are only moved out.
impl<F: Future> Unpin for JoinAll<F> {}

enum Slot<F: Future> {
    Running(F),
    Done(F::Output),
    /// Output handed out (after the join completed).
    Taken,
}

/// Slots woken since the last poll, and the task to wake.
struct Ready {
    /// In wake order; each index at most once (see `queued`).
    queue: Vec<usize>,
    queued: Vec<bool>,
    parent: Option<Waker>,
}

struct SlotWaker {
    index: usize,
    ready: Arc<Mutex<Ready>>,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let parent = {
            // Nothing can leave `Ready` inconsistent mid-update; use it as is.
            let mut ready = self.ready.lock().unwrap_or_else(PoisonError::into_inner);
            let newly = match ready.queued.get_mut(self.index) {
                Some(flag) if !*flag => {
                    *flag = true;
                    true
                }
                _ => false,
            };
            if newly {
                ready.queue.push(self.index);
                ready.parent.clone()
            } else {
                // Already queued: the task was woken when it was queued.
                None
            }
        };
        if let Some(parent) = parent {
            parent.wake();
        }
    }
}

impl<F> Future for JoinAll<F>
where
    F: Future + Unpin,
{
    type Output = Vec<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        {
            let mut ready = this.ready.lock().unwrap_or_else(PoisonError::into_inner);
            match &ready.parent {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => ready.parent = Some(cx.waker().clone()),
            }
            std::mem::swap(&mut ready.queue, &mut this.scratch);
            for &i in &this.scratch {
                if let Some(flag) = ready.queued.get_mut(i) {
                    *flag = false;
                }
            }
        }
        // Polled without the lock: a future may wake itself while polled.
        for &i in &this.scratch {
            let (Some(slot), Some(waker)) = (this.slots.get_mut(i), this.wakers.get(i)) else {
                continue;
            };
            let Slot::Running(future) = slot else {
                continue; // woken again after it finished
            };
            if let Poll::Ready(output) = Pin::new(future).poll(&mut Context::from_waker(waker)) {
                *slot = Slot::Done(output);
                this.remaining -= 1;
            }
        }
        this.scratch.clear();
        if this.remaining > 0 {
            return Poll::Pending;
        }
        let outputs = this
            .slots
            .iter_mut()
            .filter_map(|slot| match std::mem::replace(slot, Slot::Taken) {
                Slot::Done(output) => Some(output),
                Slot::Running(_) | Slot::Taken => None,
            })
            .collect();
        Poll::Ready(outputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::oneshot;

    /// A future that records its first poll, counts its polls and finishes
    /// when its channel gets a value.
    struct Probe {
        id: usize,
        rx: oneshot::Receiver<u32>,
        first_polls: Arc<Mutex<Vec<usize>>>,
        polls: Arc<AtomicUsize>,
        polled: bool,
    }

    impl Future for Probe {
        type Output = (usize, u32);
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            if !self.polled {
                self.polled = true;
                self.first_polls.lock().unwrap().push(self.id);
            }
            let id = self.id;
            match Pin::new(&mut self.rx).poll(cx) {
                Poll::Ready(v) => Poll::Ready((id, v.unwrap_or(0))),
                Poll::Pending => Poll::Pending,
            }
        }
    }

    #[tokio::test]
    async fn outputs_in_order_first_polls_in_order_and_linear_polls() {
        const N: usize = 200;
        let first_polls = Arc::new(Mutex::new(Vec::new()));
        let polls = Arc::new(AtomicUsize::new(0));
        let mut senders = Vec::new();
        let mut probes = Vec::new();
        for id in 0..N {
            let (tx, rx) = oneshot::channel();
            senders.push(tx);
            probes.push(Probe {
                id,
                rx,
                first_polls: Arc::clone(&first_polls),
                polls: Arc::clone(&polls),
                polled: false,
            });
        }
        let join = tokio::spawn(join_all_in_order(probes));
        // Finish them in reverse order, one at a time, yielding in between
        // so the join task runs between completions (the worst case for a
        // join that polls everything on every wake).
        for (id, tx) in senders.into_iter().enumerate().rev() {
            tx.send(id as u32 * 10).unwrap();
            tokio::task::yield_now().await;
        }
        let out = join.await.unwrap();
        let expected: Vec<(usize, u32)> = (0..N).map(|id| (id, id as u32 * 10)).collect();
        assert_eq!(out, expected);
        assert_eq!(*first_polls.lock().unwrap(), (0..N).collect::<Vec<_>>());
        // One first poll each, and one more once its value arrived.
        assert!(polls.load(Ordering::SeqCst) <= 2 * N, "{polls:?}");
    }

    #[tokio::test]
    async fn empty_and_ready_futures() {
        let none: Vec<std::future::Ready<u8>> = Vec::new();
        assert!(join_all_in_order(none).await.is_empty());
        let ready: Vec<_> = (0..5u8).map(std::future::ready).collect();
        assert_eq!(join_all_in_order(ready).await, vec![0, 1, 2, 3, 4]);
    }
}
