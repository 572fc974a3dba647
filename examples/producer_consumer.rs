//! Ports seed `004_5b2975e6746989ca.txt`: the generator-based producer/consumer of its section
//! "基于生成器的协程" (coroutines built on generators).
//!
//! In the seed, `consumer()` is a generator and `produce(c)` drives it: `c.send(n)` hands the
//! consumer an item *and* returns what the consumer yields next, its reply `'200 OK'`. Here the
//! two are tasks on one loop, and the two directions of `send` are two queues:
//!
//! - `items`, producer → consumer: `c.send(n)` is `items.put(Some(n))`, and `c.close()` is
//!   `items.put(None)` (the consumer returns, as the seed's does on `if not n: return`);
//! - `replies`, consumer → producer: `n = yield r` is `replies.put(r)` followed by `items.get()`.
//!
//! `c.send(None)`, which starts the generator, becomes the producer waiting for the consumer's
//! first reply, the empty string of `r = ''`. The output is the seed's, line for line:
//!
//! ```text
//! [PRODUCER] Producing 1...
//! [CONSUMER] Consuming 1...
//! [PRODUCER] Consumer return: 200 OK
//! ...
//! [PRODUCER] Producing 5...
//! [CONSUMER] Consuming 5...
//! [PRODUCER] Consumer return: 200 OK
//! ```
//!
//! As in the seed, one thread does everything and nothing is locked: each side waits on a queue,
//! and the loop runs the other side meanwhile.
//!
//! Run with: `cargo run --example producer_consumer`

use aioloop::sync::Queue;

/// The seed's `consumer()`: yields its reply `r` and receives the next item, until there is none.
async fn consumer(items: Queue<Option<u32>>, replies: Queue<&'static str>) {
    let mut r = "";
    loop {
        // `n = yield r`: give the reply back, then wait for the next item.
        replies.put(r).await;
        let Some(n) = items.get().await else {
            return; // `if not n: return`
        };
        println!("[CONSUMER] Consuming {n}...");
        r = "200 OK";
    }
}

/// The seed's `produce(c)`: sends 1 to 5 and prints each reply.
async fn produce(items: &Queue<Option<u32>>, replies: &Queue<&'static str>) {
    // `c.send(None)`: start the consumer; its first reply is the empty `r = ''`.
    replies.get().await;
    for n in 1..=5 {
        println!("[PRODUCER] Producing {n}...");
        // `r = c.send(n)`: hand over the item, then wait for the consumer's reply.
        items.put(Some(n)).await;
        let r = replies.get().await;
        println!("[PRODUCER] Consumer return: {r}");
    }
    // `c.close()`.
    items.put(None).await;
}

fn main() {
    aioloop::run(async {
        // Bounded to one item each way, like a generator: at most one value is in flight.
        let (items, replies) = (Queue::new(1), Queue::new(1));
        let c = aioloop::spawn(consumer(items.clone(), replies.clone()));
        produce(&items, &replies).await;
        c.await.expect("the consumer is neither cancelled nor panicking");
    });
}
