//! Property: any interleaving and duplication of a day's reports pays exactly once.

use super::*;

/// Reports of one day from up to three sources, sent in shuffled batches, some duplicated.
#[derive(Debug, Clone)]
struct DayPlan {
    /// (source index, steps), in sending order, duplicates included.
    sends: Vec<(usize, i64)>,
    /// Start a new batch before this send.
    cuts: Vec<bool>,
    /// Send all batches at once instead of one after the other.
    parallel: bool,
}

fn day_plans() -> impl Strategy<Value = DayPlan> {
    (1..=3usize)
        .prop_flat_map(|sources| prop::collection::vec((0..sources, 1..=40_000i64), 1..=8))
        .prop_flat_map(|reports| {
            let n = reports.len();
            (Just(reports), prop::collection::vec(0..n, 0..=n))
        })
        .prop_flat_map(|(reports, duplicates)| {
            let mut sends = reports.clone();
            sends.extend(duplicates.iter().map(|&i| reports[i]));
            let len = sends.len();
            (
                Just(sends).prop_shuffle(),
                prop::collection::vec(any::<bool>(), len),
                any::<bool>(),
            )
        })
        .prop_map(|(sends, cuts, parallel)| DayPlan {
            sends,
            cuts,
            parallel,
        })
}

impl DayPlan {
    fn batches(&self, date: NaiveDate) -> Vec<Vec<StepReport>> {
        // Read after the day ended: every cadence window is the whole day (at most 28/min).
        let read_at = at(date + Days::new(1), 12, 0);
        let sources = [PHONE, WATCH, "health_connect"];
        let mut batches: Vec<Vec<StepReport>> = Vec::new();
        for (i, &(source, steps)) in self.sends.iter().enumerate() {
            if i == 0 || self.cuts[i] {
                batches.push(Vec::new());
            }
            let batch = batches.last_mut().unwrap();
            batch.push(report(date, sources[source], steps, read_at));
        }
        batches
    }

    fn largest(&self) -> i64 {
        self.sends
            .iter()
            .map(|&(_, steps)| steps)
            .max()
            .unwrap_or(0)
    }
}

/// The bonuses a single day of `total` steps unlocks for a new user (1k, 5k and 10k).
fn first_day_bonuses(total: i64) -> i64 {
    [(1000, 10), (5000, 20), (10000, 50)]
        .iter()
        .filter(|&&(threshold, _)| total >= threshold)
        .map(|&(_, bonus)| bonus)
        .sum()
}

#[test]
fn any_interleaving_and_duplication_of_a_days_reports_pays_once() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(TestServer::start()).unwrap();
    let api = Api::new(&server);
    let date = days_ago(2);

    let mut runner = TestRunner::new(ProptestConfig::with_cases(12));
    let outcome = runner.run(&day_plans(), |plan| {
        let email = format!("walker.{}@example.com", Uuid::new_v4().simple());
        let (paid, step_reward, wallet) = runtime.block_on(async {
            let walker = api.account(&email).await;
            let mut paid = 0;
            if plan.parallel {
                let mut tasks = JoinSet::new();
                for batch in plan.batches(date) {
                    let (api, walker) = (api.clone(), walker.clone());
                    tasks.spawn(async move { api.record(&walker, &batch).await.coins_awarded });
                }
                paid = tasks.join_all().await.iter().sum();
            } else {
                for batch in plan.batches(date) {
                    paid += api.record(&walker, &batch).await.coins_awarded;
                }
            }
            let ledger = api.transactions(&walker).await;
            let wallet = api.wallet(&walker).await.available_coins;
            (paid, day_reward(&ledger, date), wallet)
        });
        let expected = day_coins(plan.largest());
        prop_assert_eq!(step_reward, expected, "step coins booked for the day");
        prop_assert_eq!(wallet, expected + first_day_bonuses(plan.largest()));
        prop_assert_eq!(paid, wallet, "the answers add up to the wallet");
        Ok::<(), TestCaseError>(())
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
    runtime.block_on(assert_ledger_consistent(&server));
    drop(server);
}
