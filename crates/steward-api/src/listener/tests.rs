//! The admission rules, without sockets.

use super::*;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn ipv6_callers_count_per_slash_64_and_mapped_ipv4_as_ipv4() {
    let a = ip("2001:db8:1:2:aaaa::1");
    let b = ip("2001:db8:1:2:bbbb::9");
    assert_eq!(address_key(a), address_key(b));
    assert_ne!(address_key(a), address_key(ip("2001:db8:1:3::1")));
    assert_eq!(address_key(ip("::ffff:10.0.0.7")), ip("10.0.0.7"));
}

#[test]
fn one_address_holds_at_most_its_share() {
    let admission = Admission::new(16, 2);
    let _a = admission.admit(ip("10.0.0.1")).unwrap();
    let _b = admission.admit(ip("10.0.0.1")).unwrap();
    assert_eq!(
        admission.admit(ip("10.0.0.1")).err(),
        Some(Refusal::PerAddress)
    );
    // A /64 is one address.
    let _c = admission.admit(ip("2001:db8::1")).unwrap();
    let _d = admission.admit(ip("2001:db8::2")).unwrap();
    assert_eq!(
        admission.admit(ip("2001:db8::3")).err(),
        Some(Refusal::PerAddress)
    );
    assert!(admission.admit(ip("10.0.0.2")).is_ok());
}

#[test]
fn places_are_given_back_when_connections_close() {
    let admission = Admission::new(2, 2);
    let a = admission.admit(ip("10.0.0.1")).unwrap();
    let _b = admission.admit(ip("10.0.0.1")).unwrap();
    assert_eq!(admission.open(), 2);
    drop(a);
    assert_eq!(admission.open(), 1);
    assert!(admission.admit(ip("10.0.0.1")).is_ok());
}

#[tokio::test]
async fn when_full_a_newcomer_takes_the_oldest_unproven_place_of_the_largest_holder() {
    let admission = Admission::new(4, 4);
    let flood: Vec<Place> = (0..3)
        .map(|_| admission.admit(ip("10.0.0.9")).unwrap())
        .collect();
    let _other = admission.admit(ip("10.0.0.8")).unwrap();
    assert_eq!(admission.open(), 4);

    let oldest_evicted = flood[0].evicted();
    let newcomer = admission.admit(ip("10.0.0.1")).unwrap();
    tokio::time::timeout(Duration::from_secs(1), oldest_evicted)
        .await
        .expect("the flood's oldest connection is told to close");
    assert_eq!(admission.open(), 4, "the newcomer took the evicted place");

    // Its own address holds the most: refused rather than evicting its own.
    assert_eq!(
        admission.admit(ip("10.0.0.9")).err(),
        Some(Refusal::FairShare),
        "the largest holder cannot grow by evicting others"
    );
    drop(newcomer);
    drop(flood);
}

#[tokio::test]
async fn proven_connections_are_never_evicted() {
    let admission = Admission::new(2, 2);
    let a = admission.admit(ip("10.0.0.9")).unwrap();
    let b = admission.admit(ip("10.0.0.9")).unwrap();
    a.prove();
    b.prove();
    assert_eq!(
        admission.admit(ip("10.0.0.1")).err(),
        Some(Refusal::Busy),
        "nothing to evict"
    );
    // Room comes only when a place is given back.
    let room = tokio::time::timeout(Duration::from_millis(100), admission.room()).await;
    assert!(room.is_err(), "no room while every place is proven");
    let waiting = {
        let admission = Arc::clone(&admission);
        tokio::spawn(async move { admission.room().await })
    };
    tokio::task::yield_now().await;
    drop(a);
    tokio::time::timeout(Duration::from_secs(1), waiting)
        .await
        .expect("room once a place is given back")
        .unwrap();
    drop(b);
}

#[test]
fn an_address_holding_as_many_as_the_largest_is_not_let_in_by_eviction() {
    let admission = Admission::new(4, 4);
    let _x: Vec<Place> = (0..2)
        .map(|_| admission.admit(ip("10.0.0.9")).unwrap())
        .collect();
    let _y: Vec<Place> = (0..2)
        .map(|_| admission.admit(ip("10.0.0.8")).unwrap())
        .collect();
    // 10.0.0.8 holds 2, the largest unproven holder 2: evicting would not make it fairer.
    assert_eq!(
        admission.admit(ip("10.0.0.8")).err(),
        Some(Refusal::FairShare)
    );
    // An address holding fewer gets in.
    assert!(admission.admit(ip("10.0.0.7")).is_ok());
}
