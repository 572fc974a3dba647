//! Scale: a million tasks spawned and completed on one thread.

use std::cell::Cell;
use std::rc::Rc;

#[test]
#[cfg_attr(miri, ignore = "a million tasks take hours under Miri")]
fn a_million_spawned_tasks_complete() {
    let mut lp = aioloop::EventLoop::builder().virtual_time(true).build().unwrap();
    let n = 1_000_000u64;
    let sum = Rc::new(Cell::new(0u64));
    let s = sum.clone();
    lp.run_until_complete(async move {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let s = s.clone();
                aioloop::spawn(async move {
                    aioloop::yield_now().await;
                    s.set(s.get() + i);
                    i
                })
            })
            .collect();
        let mut total = 0;
        for h in handles {
            total += h.await.unwrap();
        }
        assert_eq!(total, n * (n - 1) / 2);
    });
    assert_eq!(sum.get(), n * (n - 1) / 2);
    assert_eq!(lp.stats().tasks, 0);
    // A million detached tasks are freed as they finish.
    for _ in 0..n {
        lp.spawn(async {});
    }
    lp.run_until_complete(aioloop::yield_now());
    assert_eq!(lp.stats().tasks, 0);
}
