//! `MqttTopics` routes exactly like Mosquitto: generated topics and filters, the server's
//! deliveries (seen by a raw rumqttc MQTT 5 client, one subscription identifier per
//! filter) against the matcher's answers.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, SubscribeProperties};
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use ruststream::kit::live::fresh_name;
use ruststream::matching::NameMatcher;
use ruststream_mqtt::MqttTopics;

/// A small deterministic generator (xorshift), so a failure can be rerun.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn levels(rng: &mut Rng, choices: &[&str]) -> Vec<String> {
    let depth = 1 + rng.below(3);
    (0..depth)
        .map(|_| choices[rng.below(choices.len())].to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matcher_agrees_with_mosquitto_on_generated_topics_and_filters() {
    let test = "matcher_agrees_with_mosquitto_on_generated_topics_and_filters";
    let Some(server) = support::shared_server(test).await else {
        return;
    };
    let root = fresh_name("rsmatch");
    let dollar = format!("${root}");
    let mut rng = Rng(0x5eed_1234_abcd_ef01);

    let mut topics = BTreeSet::new();
    for _ in 0..40 {
        let base = if rng.below(5) == 0 { &dollar } else { &root };
        topics.insert(format!(
            "{base}/{}",
            levels(&mut rng, &["a", "b", ""]).join("/")
        ));
    }
    topics.insert(root.clone());
    topics.insert(dollar.clone());
    let mut filters = BTreeSet::new();
    for _ in 0..40 {
        let mut filter = levels(&mut rng, &["a", "b", "", "+"]);
        if rng.below(3) == 0 {
            filter.push("#".to_owned());
        }
        let base = match rng.below(6) {
            0 => "+".to_owned(),
            1 => dollar.clone(),
            _ => root.clone(),
        };
        filters.insert(format!("{base}/{}", filter.join("/")));
    }
    for special in ["#", "+", "+/#", "+/a", "+/+"] {
        filters.insert(special.to_owned());
    }
    filters.insert(format!("{root}/#"));
    filters.insert(format!("{dollar}/#"));
    filters.insert(format!("$share/g/{root}/+"));
    let filters: Vec<String> = filters.into_iter().collect();

    let mut options = MqttOptions::new(fresh_name("rsmatch_sub"), &server.0, server.1);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut event_loop) = AsyncClient::new(options, 1000);
    for (index, filter) in filters.iter().enumerate() {
        assert!(MqttTopics.validate_pattern(filter).is_ok(), "{filter}");
        let properties = SubscribeProperties {
            id: Some(index + 1),
            user_properties: Vec::new(),
        };
        client
            .subscribe_with_properties(filter.clone(), QoS::AtMostOnce, properties)
            .await
            .expect("subscribe");
    }
    for topic in &topics {
        assert!(MqttTopics.validate_name(topic).is_ok(), "{topic}");
        client
            .publish(topic.clone(), QoS::AtLeastOnce, false, "x")
            .await
            .expect("publish");
    }
    // The last publish's echo ends the wait: a marker topic every `#` filter sees.
    let marker = format!("{root}/marker");
    client
        .publish(marker.clone(), QoS::AtLeastOnce, false, "end")
        .await
        .expect("publish");

    let mut seen = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut suback_count = 0;
    loop {
        let event = tokio::time::timeout_at(deadline, event_loop.poll())
            .await
            .expect("Mosquitto answered within 10 s")
            .expect("connection");
        match event {
            Event::Incoming(Packet::SubAck(_)) => suback_count += 1,
            Event::Incoming(Packet::Publish(publish)) => {
                let topic = String::from_utf8(publish.topic.to_vec()).expect("utf-8 topic");
                if topic == marker {
                    break;
                }
                if !topics.contains(&topic) {
                    continue; // someone else's traffic on the shared server
                }
                for id in publish
                    .properties
                    .map(|p| p.subscription_identifiers)
                    .unwrap_or_default()
                {
                    seen.insert((topic.clone(), filters[id - 1].clone()));
                }
            }
            _ => {}
        }
    }
    assert_eq!(suback_count, filters.len());
    let _ = client.disconnect().await;

    let expected: BTreeSet<(String, String)> = topics
        .iter()
        .flat_map(|topic| {
            filters
                .iter()
                .filter(|filter| MqttTopics.matches(filter, topic))
                .map(move |filter| (topic.clone(), filter.clone()))
        })
        .collect();
    let only_server: Vec<_> = seen.difference(&expected).collect();
    let only_matcher: Vec<_> = expected.difference(&seen).collect();
    assert!(
        only_server.is_empty() && only_matcher.is_empty(),
        "Mosquitto and MqttTopics disagree.\nDelivered by Mosquitto, not matched: {only_server:?}\nMatched, not delivered by Mosquitto: {only_matcher:?}"
    );
    assert!(
        expected.len() > 20,
        "the generated cases exercise matching ({} pairs)",
        expected.len()
    );
}
