//! `make invoke` for every function on its sample event in `events/`: the real binary, built by
//! cargo, with the environment its template entry declares and nothing else, on a stack of its
//! own (provisioned by the command); and a function that cannot start fails the command at once
//! with its log. `ripple up`, `env` and `down` keep a stack between commands.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use ripple::provision::{self, Deployment};
use ripple::template::Template;
use ripple_kit::EventStore;
use ripple_kit::store::DynamoEventStore;
use serde_json::Value;
use tokio::process::Command;

/// The order every sample event of `events/` is about.
const SAMPLE_ORDER: &str = "01a2076b-43f1-707c-8a9e-5b7d2c48e6a1";
/// Far beyond a cold build of every function: a command still running then is hanging.
const HANG: Duration = Duration::from_secs(900);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// What a command did.
struct Ran {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Ran {
    /// The function's answer; the command's output when there is none.
    fn answer(&self) -> Value {
        assert!(self.status.success(), "{}", self.output());
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.output()))
    }

    /// Every record of a batch handled.
    fn assert_batch_handled(&self) {
        let answer = self.answer();
        assert_eq!(
            answer["batchItemFailures"],
            Value::Array(Vec::new()),
            "{}",
            self.output()
        );
    }

    fn output(&self) -> String {
        format!(
            "{}\n--- stdout\n{}\n--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `program` in the repository root; a failure if it has not finished after [`HANG`].
async fn run(program: &str, args: &[String]) -> Ran {
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(repo_root())
        // A `make test` around us is no parent of this make.
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("MAKELEVEL")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(HANG, command.output())
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} still runs after {HANG:?}"))
        .unwrap();
    Ran {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `make invoke FN=<function>` on a stack of its own, with the `ripple` this test was built with.
async fn make_invoke(function: &str, stack: &str, extra: &[&str]) -> Ran {
    let mut args = vec![
        "-s".to_owned(),
        "invoke".to_owned(),
        format!("FN={function}"),
        format!("STACK={stack}"),
        format!("RIPPLE={}", env!("CARGO_BIN_EXE_ripple")),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    run("make", &args).await
}

async fn ripple(args: &[&str]) -> Ran {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    run(env!("CARGO_BIN_EXE_ripple"), &args).await
}

/// A stack one test invokes against, deleted by [`TestStack::down`].
struct TestStack {
    aws: aws_config::SdkConfig,
    name: String,
}

impl TestStack {
    async fn new(function: &str) -> Self {
        TestStack {
            aws: support::emulator().await,
            name: support::stack_name("inv", function),
        }
    }

    /// The stack as the command left it.
    async fn deployment(&self) -> Deployment {
        let template = Template::from_file(repo_root().join("template.yaml")).unwrap();
        provision::lookup(&self.aws, &template, &self.name)
            .await
            .unwrap()
    }

    /// The event types of one stream of the event store.
    async fn types(&self, aggregate_type: &str, id: &str) -> Vec<String> {
        let deployment = self.deployment().await;
        let table = deployment.events_table().unwrap();
        let store = DynamoEventStore::new(aws_sdk_dynamodb::Client::new(&self.aws), table);
        let events = store.read_stream(aggregate_type, id, 1).await.unwrap();
        events.into_iter().map(|e| e.event_type).collect()
    }

    async fn down(self) {
        let deployment = self.deployment().await;
        provision::teardown(&self.aws, &deployment).await.unwrap();
    }
}

/// A stack of its own on which `make invoke FN=<function>` handled every record of its sample.
async fn handled(function: &str) -> TestStack {
    let stack = TestStack::new(function).await;
    make_invoke(function, &stack.name, &[])
        .await
        .assert_batch_handled();
    stack
}

#[tokio::test]
async fn make_invoke_runs_orders_api_on_its_sample_and_the_order_is_placed() {
    let stack = TestStack::new("orders-api").await;
    let ran = make_invoke("orders-api", &stack.name, &[]).await;
    let answer = ran.answer();
    assert_eq!(answer["statusCode"], 201, "{}", ran.output());
    let body: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    let order = body["order_id"].as_str().unwrap();
    assert_eq!(stack.types("Order", order).await, ["order.placed"]);
    stack.down().await;
}

#[tokio::test]
async fn make_invoke_runs_outbox_publisher_on_its_sample_and_the_event_reaches_inventory() {
    let stack = handled("outbox-publisher").await;
    let deployment = stack.deployment().await;
    let queue = &deployment.queue("InventoryQueue").unwrap().url;
    let sqs = aws_sdk_sqs::Client::new(&stack.aws);
    let depth = ripple::runtime::sqs::depth(&sqs, queue).await.unwrap();
    assert_eq!(
        depth, 1,
        "the published order.placed waits in the inventory queue"
    );
    stack.down().await;
}

#[tokio::test]
async fn make_invoke_runs_inventory_on_its_sample_and_the_order_without_stock_is_rejected() {
    let stack = handled("inventory").await;
    assert_eq!(
        stack.types("Reservation", SAMPLE_ORDER).await,
        ["stock.rejected"]
    );
    stack.down().await;
}

#[tokio::test]
async fn make_invoke_runs_payments_on_its_sample_and_the_placed_order_is_charged() {
    let stack = handled("payments").await;
    assert_eq!(
        stack.types("Payment", SAMPLE_ORDER).await,
        ["payment.captured"]
    );
    stack.down().await;
}

#[tokio::test]
async fn make_invoke_runs_order_saga_on_its_sample_and_the_paid_order_is_confirmed() {
    let stack = handled("order-saga").await;
    assert_eq!(
        stack.types("Order", SAMPLE_ORDER).await,
        ["order.placed", "order.confirmed"]
    );
    stack.down().await;
}

#[tokio::test]
async fn make_invoke_runs_projections_on_its_sample_and_the_order_has_a_view() {
    let stack = handled("projections").await;
    let deployment = stack.deployment().await;
    let views = &deployment.table("OrderViewsTable").unwrap().name;
    let view = aws_sdk_dynamodb::Client::new(&stack.aws)
        .get_item()
        .table_name(views)
        .key("id", AttributeValue::S(SAMPLE_ORDER.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    assert!(view.item.is_some(), "no view of {SAMPLE_ORDER} in {views}");
    stack.down().await;
}

#[tokio::test]
async fn make_invoke_runs_notifications_on_its_sample() {
    let stack = handled("notifications").await;
    stack.down().await;
}

#[tokio::test]
async fn make_invoke_runs_the_sweeper_on_its_sample_and_it_reports_what_it_swept() {
    let stack = TestStack::new("sweeper").await;
    let answer = make_invoke("sweeper", &stack.name, &[]).await.answer();
    assert_eq!(answer["orders_timed_out"], 0, "{answer}");
    assert!(answer["views_swept_to"].is_string(), "{answer}");
    stack.down().await;
}

#[tokio::test]
async fn make_invoke_fails_at_once_with_the_log_of_a_function_that_cannot_start() {
    let stack = TestStack::new("broken").await;
    let template = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
    let declared =
        "          VIEWS_TABLE: !Ref OrderViewsTable\n      Events:\n        PlaceOrder:";
    assert!(
        template.contains(declared),
        "orders-api declares VIEWS_TABLE"
    );
    let forgotten = template.replace(declared, "      Events:\n        PlaceOrder:");
    let path = std::env::temp_dir().join(format!("{}.yaml", stack.name));
    std::fs::write(&path, forgotten).unwrap();

    let ran = make_invoke(
        "orders-api",
        &stack.name,
        &[&format!("TEMPLATE={}", path.display())],
    )
    .await;
    assert!(!ran.status.success(), "{}", ran.output());
    assert!(
        ran.stderr.contains("Missing(\"VIEWS_TABLE\")"),
        "the function's own log: {}",
        ran.output()
    );
    assert!(
        ran.stderr.contains("exited before it answered"),
        "reported as an exit, not a timeout: {}",
        ran.output()
    );
    stack.down().await;
    std::fs::remove_file(path).unwrap();
}

#[tokio::test]
async fn a_stack_brought_up_gives_each_function_its_template_environment_until_taken_down() {
    let stack = TestStack::new("updown").await;
    let name = stack.name.as_str();
    let up = ripple(&["up", "--stack", name]).await;
    assert!(up.status.success(), "{}", up.output());
    assert!(
        up.stdout.contains(&format!("{name}-events")),
        "{}",
        up.output()
    );

    let env = ripple(&["env", "orders-api", "--stack", name]).await;
    assert!(env.status.success(), "{}", env.output());
    let lines: Vec<&str> = env.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            format!("EVENTS_TABLE={name}-events"),
            "REDELIVERY_BASE_SECONDS=30".to_owned(),
            "REDELIVERY_CAP_SECONDS=900".to_owned(),
            "RUST_LOG=info".to_owned(),
            format!("VIEWS_TABLE={name}-order-views"),
        ],
        "the variables of its template entry and Globals, nothing Lambda sets"
    );

    let down = ripple(&["down", "--stack", name]).await;
    assert!(down.status.success(), "{}", down.output());
    let gone = ripple(&["env", "OrdersApiFunction", "--stack", name]).await;
    assert!(!gone.status.success(), "{}", gone.output());
    assert!(
        gone.stderr
            .contains(&format!("stack {name} has no table {name}-events"))
            && gone.stderr.contains("ripple up"),
        "{}",
        gone.output()
    );
}
