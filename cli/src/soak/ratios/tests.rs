use serde_norway::Value as Yaml;

use super::*;
use crate::soak::time::TimeScale;
use crate::soak::time::tests::stack;

/// The literal variables of every function, compressed by `scale` as the soak does.
fn environments_of(stack: &Stack, scale: TimeScale) -> Environments {
    stack
        .functions
        .iter()
        .map(|f| {
            let mut variables: BTreeMap<String, String> = f
                .environment
                .iter()
                .filter_map(|(k, v)| match v {
                    Yaml::String(s) => Some((k.clone(), s.clone())),
                    Yaml::Number(n) => Some((k.clone(), n.to_string())),
                    _ => None,
                })
                .collect();
            scale.compress_variables(&f.name, &mut variables);
            (f.logical_id.clone(), variables)
        })
        .collect()
}

#[test]
fn compression_keeps_every_ratio_of_the_template() {
    for factor in [1.0, 2.0, 7.0, 10.0, 20.0, 60.0] {
        let scale = TimeScale::new(factor);
        let mut stack = stack();
        let hour = Some(Duration::from_secs(3600));
        let template = environments_of(&stack, TimeScale::new(1.0));
        assert_eq!(
            problems(&stack, &template, hour, Some(Duration::from_secs(7200))),
            Vec::<String>::new(),
            "the template itself"
        );
        scale.compress_stack(&mut stack);
        let environments = environments_of(&stack, scale);
        let outage = Some(scale.of(Duration::from_secs(3600)));
        let deadline = Some(scale.of(Duration::from_secs(7200)));
        assert_eq!(
            problems(&stack, &environments, outage, deadline),
            Vec::<String>::new(),
            "factor {factor}"
        );
    }
}

#[test]
fn a_visibility_timeout_too_short_for_its_function_is_reported() {
    let mut stack = stack();
    for queue in &mut stack.queues {
        queue.visibility_timeout = Some(30);
    }
    let environments = environments_of(&stack, TimeScale::new(1.0));
    let problems = problems(&stack, &environments, None, None);
    assert!(
        problems.iter().any(|p| p.contains("under 6 ×")),
        "{problems:?}"
    );
}

#[test]
fn a_retention_the_redeliveries_outlast_is_reported() {
    let mut stack = stack();
    for queue in &mut stack.queues {
        queue.message_retention_period = Some(3600);
    }
    let environments = environments_of(&stack, TimeScale::new(1.0));
    let problems = problems(&stack, &environments, None, None);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("beyond its 3600 s retention")),
        "{problems:?}"
    );
}

#[test]
fn an_outage_that_uses_up_the_receives_or_outlasts_the_deadline_is_reported() {
    let stack = stack();
    let environments = environments_of(&stack, TimeScale::new(1.0));
    let day = Duration::from_secs(86_400);
    let used_up = problems(&stack, &environments, Some(day), None);
    assert!(
        used_up.iter().any(|p| p.contains("can be used up")),
        "{used_up:?}"
    );
    let short_deadline = problems(
        &stack,
        &environments,
        Some(Duration::from_secs(600)),
        Some(Duration::from_secs(900)),
    );
    assert!(
        short_deadline
            .iter()
            .any(|p| p.contains("order deadline is not above")),
        "{short_deadline:?}"
    );
}

#[test]
fn the_soak_deadline_is_twice_what_a_message_takes_through_the_outage() {
    let backoff = RedeliveryBackoff {
        base: Duration::from_secs(15),
        cap: Duration::from_secs(450),
        jitter: true,
    };
    // Receives come at least 8 + 15 s apart, so the third failed receive is the last one a
    // 30 s outage can hold, and its backoff is at most 60 s.
    assert_eq!(
        ride_out(&backoff, Duration::from_secs(30)),
        Duration::from_secs(90)
    );
    assert_eq!(ride_out(&backoff, Duration::ZERO), Duration::ZERO);
    let template = RedeliveryBackoff {
        base: Duration::from_secs(30),
        cap: Duration::from_secs(900),
        jitter: true,
    };
    assert_eq!(
        ride_out(&template, Duration::from_secs(3600)),
        Duration::from_secs(4500),
        "the template's hour, then one capped backoff: under its 2 h deadline"
    );
    let mut stack = stack();
    let scale = TimeScale::new(2.0);
    scale.compress_stack(&mut stack);
    let environments = environments_of(&stack, scale);
    let deadline = order_deadline(&stack, &environments, Duration::from_secs(30));
    assert_eq!(deadline, Duration::from_secs(180));
    assert_eq!(
        problems(
            &stack,
            &environments,
            Some(Duration::from_secs(30)),
            Some(deadline)
        ),
        Vec::<String>::new()
    );
}
