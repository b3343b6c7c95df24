//! The daemon's ingest path against a real, private redis-server: listeners → metric actors →
//! Skyline's Redis layout; bad input; Redis outages; shutdown.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use skyline::model::msgpack::{decode_series, encode_point};
use skyline::model::{Number, Point};
use skyline::telemetry::metrics as m;

use crate::support::*;

fn carbon_pair(ts: f64, v: f64) -> Vec<u8> {
    let mut b = Vec::new();
    encode_point(
        &mut b,
        &Point {
            timestamp: Number::Float(ts),
            value: Number::Float(v),
        },
    );
    b
}

#[actix_rt::test]
async fn pickle_frames_land_byte_identical_in_redis() {
    let redis = TestRedis::start().unwrap();
    let dir = TempDir::new("pickle");
    let running = skyline::app::start(&config(&redis, &dir)).await.unwrap();
    let t = now() as f64;
    let items: Vec<(String, (f64, f64))> = (0..5)
        .map(|i| {
            (
                "stats.server-1.cpu".to_string(),
                (t - 5.0 + i as f64, 40.0 + i as f64),
            )
        })
        .chain(std::iter::once((
            "stats.ünïcode.metric".to_string(),
            (t, 2.5),
        )))
        .collect();
    let mut s = TcpStream::connect(running.pickle_addr.unwrap()).unwrap();
    s.write_all(&frame(&items)).unwrap();
    let mut conn = redis_conn(&redis);
    let want: Vec<u8> = (0..5)
        .flat_map(|i| carbon_pair(t - 5.0 + i as f64, 40.0 + i as f64))
        .collect();
    let got = eventually(10, || {
        get_raw(&mut conn, "stats.server-1.cpu").filter(|v| v.len() >= want.len())
    })
    .await;
    assert_eq!(
        got.unwrap(),
        want,
        "concatenated msgpack pairs, arrival order, no outer array"
    );
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg("metrics.unique_metrics")
        .query(&mut conn)
        .unwrap();
    assert!(
        members.contains(&"metrics.stats.server-1.cpu".to_string()),
        "{members:?}"
    );
    assert!(
        members.contains(&"metrics.stats.ünïcode.metric".to_string()),
        "{members:?}"
    );
    assert_eq!(running.shutdown().await, 0);
}

#[actix_rt::test]
async fn a_hostile_frame_costs_only_itself() {
    let redis = TestRedis::start().unwrap();
    let dir = TempDir::new("hostile");
    let running = skyline::app::start(&config(&redis, &dir)).await.unwrap();
    let addr = running.pickle_addr.unwrap();
    let hostile = std::fs::read(shared("vectors/pickles/mal_global_reduce_p2.bin")).unwrap();
    let t = now() as f64;
    let before = m::DROPPED_DECODE.get();
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(&frame(&[("hostile.before".into(), (t - 1.0, 1.0))]))
        .unwrap();
    s.write_all(&hostile).unwrap();
    s.write_all(&frame(&[("hostile.after".into(), (t, 2.0))]))
        .unwrap();
    // another connection, untouched
    let mut other = TcpStream::connect(addr).unwrap();
    other
        .write_all(&frame(&[("hostile.other".into(), (t, 3.0))]))
        .unwrap();
    let mut conn = redis_conn(&redis);
    for name in ["hostile.before", "hostile.after", "hostile.other"] {
        let v = eventually(10, || get_raw(&mut conn, name)).await;
        assert!(v.is_some(), "{name} should have arrived");
    }
    assert!(m::DROPPED_DECODE.get() > before);
    // the process and the listener are fine: a new connection still works
    let mut again = TcpStream::connect(addr).unwrap();
    again
        .write_all(&frame(&[("hostile.again".into(), (t, 4.0))]))
        .unwrap();
    assert!(eventually(10, || get_raw(&mut conn, "hostile.again"))
        .await
        .is_some());
    running.shutdown().await;
}

#[actix_rt::test]
async fn an_oversized_length_closes_only_that_connection() {
    let redis = TestRedis::start().unwrap();
    let dir = TempDir::new("oversize");
    let running = skyline::app::start(&config(&redis, &dir)).await.unwrap();
    let addr = running.pickle_addr.unwrap();
    let before = m::DROPPED_OVERSIZE.get();
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(&std::fs::read(shared("vectors/pickles/oversize_length_2_31.bin")).unwrap())
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 1];
    let n = tokio::task::spawn_blocking(move || s.read(&mut buf))
        .await
        .unwrap();
    assert!(
        matches!(n, Ok(0) | Err(_)),
        "connection must be closed, got {n:?}"
    );
    assert!(m::DROPPED_OVERSIZE.get() > before);
    let mut ok = TcpStream::connect(addr).unwrap();
    ok.write_all(&frame(&[("after.oversize".into(), (now() as f64, 1.0))]))
        .unwrap();
    let mut conn = redis_conn(&redis);
    assert!(eventually(10, || get_raw(&mut conn, "after.oversize"))
        .await
        .is_some());
    running.shutdown().await;
}

#[actix_rt::test]
async fn udp_garbage_is_dropped_and_the_listener_keeps_going() {
    let redis = TestRedis::start().unwrap();
    let dir = TempDir::new("udp");
    let running = skyline::app::start(&config(&redis, &dir)).await.unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = running.udp_addr.unwrap();
    let before = m::DROPPED_DECODE.get();
    udp.send_to(b"\xc1garbage", target).unwrap();
    // ['udp.metric', [now, 1.5]] with an int timestamp, as Skyline's UDP senders do
    let ts = now() as u32;
    let mut dgram = vec![0x92, 0xaa];
    dgram.extend_from_slice(b"udp.metric");
    dgram.extend_from_slice(&[0x92, 0xce]);
    dgram.extend_from_slice(&ts.to_be_bytes());
    dgram.push(0xcb);
    dgram.extend_from_slice(&1.5f64.to_be_bytes());
    udp.send_to(&dgram, target).unwrap();
    let mut conn = redis_conn(&redis);
    let got = eventually(10, || get_raw(&mut conn, "udp.metric"))
        .await
        .unwrap();
    assert_eq!(
        got,
        dgram[12..].to_vec(),
        "stored exactly as received (int ts kept)"
    );
    assert!(m::DROPPED_DECODE.get() > before);
    running.shutdown().await;
}

#[actix_rt::test]
async fn plaintext_lines_are_accepted_and_bad_lines_counted() {
    let redis = TestRedis::start().unwrap();
    let dir = TempDir::new("plain");
    let running = skyline::app::start(&config(&redis, &dir)).await.unwrap();
    let t = now();
    let mut s = TcpStream::connect(running.plaintext_addr.unwrap()).unwrap();
    write!(
        s,
        "plain.a 1.5 {t}\nthis is not a metric line at all\nplain.b 2 {t}\r\n"
    )
    .unwrap();
    drop(s);
    let mut conn = redis_conn(&redis);
    let a = eventually(10, || get_raw(&mut conn, "plain.a"))
        .await
        .unwrap();
    assert_eq!(a, carbon_pair(t as f64, 1.5), "carbon coerces to floats");
    assert!(eventually(10, || get_raw(&mut conn, "plain.b"))
        .await
        .is_some());
    running.shutdown().await;
}

#[actix_rt::test]
async fn skip_list_and_age_filter_apply() {
    let redis = TestRedis::start().unwrap();
    let dir = TempDir::new("skip");
    let mut cfg = config(&redis, &dir);
    cfg.horizon.skip_list = vec!["skip.me.".into()];
    cfg.horizon.do_not_skip_list = vec!["skip.me.but_keep".into()];
    let running = skyline::app::start(&cfg).await.unwrap();
    let t = now() as f64;
    let mut s = TcpStream::connect(running.pickle_addr.unwrap()).unwrap();
    s.write_all(&frame(&[
        ("skip.me.please".into(), (t, 1.0)),
        ("skip.me.but_keep".into(), (t, 1.0)),
        ("too.old".into(), (t - 5000.0, 1.0)),
        ("marker.last".into(), (t, 1.0)),
    ]))
    .unwrap();
    let mut conn = redis_conn(&redis);
    assert!(eventually(10, || get_raw(&mut conn, "marker.last"))
        .await
        .is_some());
    assert!(get_raw(&mut conn, "skip.me.but_keep").is_some());
    assert!(get_raw(&mut conn, "skip.me.please").is_none());
    assert!(get_raw(&mut conn, "too.old").is_none());
    running.shutdown().await;
}

#[actix_rt::test]
async fn a_redis_restart_during_ingest_loses_nothing() {
    let mut redis = TestRedis::start().unwrap();
    let port = redis.port;
    let dir = TempDir::new("restart");
    let running = skyline::app::start(&config(&redis, &dir)).await.unwrap();
    let addr = running.pickle_addr.unwrap();
    let t = now() as f64;
    let mut s = TcpStream::connect(addr).unwrap();
    let total = 300;
    for i in 0..100 {
        s.write_all(&frame(&[(
            "restart.metric".into(),
            (t - 300.0 + i as f64, i as f64),
        )]))
        .unwrap();
    }
    let mut conn = redis_conn(&redis);
    assert!(eventually(10, || get_raw(&mut conn, "restart.metric")
        .filter(|v| v.len() == 100 * 19))
    .await
    .is_some());
    redis.kill();
    for i in 100..total {
        s.write_all(&frame(&[(
            "restart.metric".into(),
            (t - 300.0 + i as f64, i as f64),
        )]))
        .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let errors_before = m::REDIS_WRITE_ERRORS.get();
    assert!(errors_before > 0, "failed writes are counted");
    // Same port, empty server (no persistence in tests): the first 100 are gone with the old
    // server, but everything accepted while it was down must arrive.
    let _redis2 = TestRedis::start_on(port).unwrap();
    let mut conn = redis::Client::open(format!("redis://127.0.0.1:{port}/0"))
        .unwrap()
        .get_connection()
        .unwrap();
    let got = eventually(30, || {
        get_raw(&mut conn, "restart.metric").filter(|v| v.len() >= 200 * 19)
    })
    .await;
    let got = decode_series(&got.expect("points buffered during the outage must arrive")).unwrap();
    let values: Vec<f64> = got.iter().map(|p| p.value.as_f64()).collect();
    let want: Vec<f64> = (100..total).map(|i| i as f64).collect();
    assert_eq!(values, want, "in order, none lost, none duplicated");
    running.shutdown().await;
}

#[actix_rt::test]
async fn shutdown_flushes_every_metric_actor() {
    let redis = TestRedis::start().unwrap();
    let dir = TempDir::new("flush");
    let mut cfg = config(&redis, &dir);
    cfg.horizon.flush_interval_ms = 60_000; // nothing is written by the timer
    let running = skyline::app::start(&cfg).await.unwrap();
    let t = now() as f64;
    let items: Vec<(String, (f64, f64))> = (0..200)
        .map(|i| (format!("flush.m{i}"), (t, i as f64)))
        .collect();
    let mut s = TcpStream::connect(running.pickle_addr.unwrap()).unwrap();
    s.write_all(&frame(&items)).unwrap();
    drop(s);
    let mut conn = redis_conn(&redis);
    // the listener decoded them (counter) but the timer has not written them
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        running.ingestor.pressure().buffered(),
        200,
        "held in the metric actors"
    );
    assert_eq!(running.shutdown().await, 0);
    for i in 0..200 {
        assert!(
            get_raw(&mut conn, &format!("flush.m{i}")).is_some(),
            "flush.m{i} lost at shutdown"
        );
    }
}

#[actix_rt::test]
async fn roomba_trims_sorts_and_euthanizes_real_keys() {
    let redis = TestRedis::start().unwrap();
    let mut conn = redis_conn(&redis);
    let t = now();
    let mut old_and_new = Vec::new();
    for (ts, v) in [
        (t - 10, 5.0),
        (t - 100_000, 1.0),
        (t - 20, 2.0),
        (t - 10, 3.0),
    ] {
        encode_point(
            &mut old_and_new,
            &Point {
                timestamp: Number::Int(ts),
                value: Number::Float(v),
            },
        );
    }
    let mut expired = Vec::new();
    encode_point(
        &mut expired,
        &Point {
            timestamp: Number::Int(t - 200_000),
            value: Number::Float(1.0),
        },
    );
    let _: () = redis::cmd("SET")
        .arg("metrics.r.mixed")
        .arg(&old_and_new)
        .query(&mut conn)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("metrics.r.expired")
        .arg(&expired)
        .query(&mut conn)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("metrics.r.garbage")
        .arg("not msgpack")
        .query(&mut conn)
        .unwrap();
    let _: () = redis::cmd("SADD")
        .arg("metrics.unique_metrics")
        .arg(&[
            "metrics.r.mixed",
            "metrics.r.expired",
            "metrics.r.garbage",
            "metrics.r.gone",
        ])
        .query(&mut conn)
        .unwrap();
    let mut cm = skyline::store::redis_conn::connect(redis.url(), Duration::from_secs(5)).unwrap();
    let report = skyline::store::roomba::run_once(&mut cm, 86_400.0 + 600.0)
        .await
        .unwrap();
    assert_eq!(report.keys, 4);
    assert_eq!(report.trimmed, 1);
    assert_eq!(report.euthanized, 3);
    let mixed = decode_series(&get_raw(&mut conn, "r.mixed").unwrap()).unwrap();
    let got: Vec<(i64, f64)> = mixed
        .iter()
        .map(|p| (p.timestamp.as_f64() as i64, p.value.as_f64()))
        .collect();
    assert_eq!(
        got,
        vec![(t - 20, 2.0), (t - 10, 3.0)],
        "sorted, trimmed, smallest value kept"
    );
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg("metrics.unique_metrics")
        .query(&mut conn)
        .unwrap();
    assert_eq!(members, vec!["metrics.r.mixed".to_string()]);
    assert!(get_raw(&mut conn, "r.expired").is_none());
}

/// MEMORY USAGE of a key, as Redis reports it.
fn memory_usage(conn: &mut redis::Connection, key: &str) -> u64 {
    redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(key)
        .arg("SAMPLES")
        .arg(0)
        .query(conn)
        .unwrap()
}

/// A day of points APPENDed four at a time sits in an allocation twice its size (Redis's
/// greedy growth); one Roomba pass rewrites it at its exact size, byte for byte, and leaves
/// an exactly sized key alone.
#[actix_rt::test]
async fn roomba_compacts_strings_that_appends_left_oversized() {
    let redis = TestRedis::start().unwrap();
    let mut conn = redis_conn(&redis);
    let t = now() as f64;
    let mut all = Vec::new();
    for chunk in 0..360 {
        let mut four = Vec::new();
        for j in 0..4 {
            let i = chunk * 4 + j;
            four.extend(carbon_pair(t - 86_400.0 + 60.0 * i as f64, i as f64 * 0.5));
        }
        let _: () = redis::cmd("APPEND")
            .arg("metrics.c.grown")
            .arg(&four)
            .query(&mut conn)
            .unwrap();
        all.extend(four);
    }
    let _: () = redis::cmd("SET")
        .arg("metrics.c.exact")
        .arg(&all)
        .query(&mut conn)
        .unwrap();
    let _: () = redis::cmd("SADD")
        .arg("metrics.unique_metrics")
        .arg(&["metrics.c.grown", "metrics.c.exact"])
        .query(&mut conn)
        .unwrap();
    let grown = memory_usage(&mut conn, "metrics.c.grown");
    let exact = memory_usage(&mut conn, "metrics.c.exact");
    assert_eq!(all.len(), 1440 * 19);
    assert!(
        grown > exact + exact / 4,
        "APPENDs grew the string greedily: {grown} vs {exact} bytes"
    );
    let mut cm = skyline::store::redis_conn::connect(redis.url(), Duration::from_secs(5)).unwrap();
    let report = skyline::store::roomba::run_once(&mut cm, 86_400.0 + 600.0)
        .await
        .unwrap();
    assert_eq!(
        (
            report.keys,
            report.trimmed,
            report.euthanized,
            report.compacted
        ),
        (2, 0, 0, 1)
    );
    assert_eq!(get_raw(&mut conn, "c.grown").unwrap(), all, "byte for byte");
    assert_eq!(get_raw(&mut conn, "c.exact").unwrap(), all);
    let after = memory_usage(&mut conn, "metrics.c.grown");
    assert!(
        after <= exact,
        "compacted to an exact allocation: {after} bytes (exactly sized: {exact})"
    );
    // Appends after the rewrite fill its slack; a second pass has nothing to do.
    let _: () = redis::cmd("APPEND")
        .arg("metrics.c.grown")
        .arg(carbon_pair(t, 1.0))
        .query(&mut conn)
        .unwrap();
    assert_eq!(memory_usage(&mut conn, "metrics.c.grown"), after);
    let again = skyline::store::roomba::run_once(&mut cm, 86_400.0 + 600.0)
        .await
        .unwrap();
    assert_eq!(again.compacted, 0);
}
