//! The one "every N, until stopped" loop of the control plane's background work
//! (instance heartbeat, egress supervision, the reaper): wait the period or the stop,
//! run one round, repeat. A round that fails is logged by the caller's closure and
//! never ends the loop; the stop is noticed between rounds, never inside one.

use std::{future::Future, time::Duration};

use tokio_util::sync::CancellationToken;

/// Runs `round` every `every` until `stop` is cancelled; returns then.
pub async fn every<F, Fut>(every: Duration, stop: &CancellationToken, mut round: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        round().await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    };

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn runs_each_period_and_stops_when_told() {
        let n = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let task = {
            let (n, stop) = (n.clone(), stop.clone());
            tokio::spawn(async move {
                every(Duration::from_secs(1), &stop, || {
                    let n = n.clone();
                    async move {
                        n.fetch_add(1, Ordering::SeqCst);
                    }
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(3500)).await;
        assert_eq!(n.load(Ordering::SeqCst), 3);
        stop.cancel();
        task.await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(n.load(Ordering::SeqCst), 3, "no round after the stop");
    }
}
