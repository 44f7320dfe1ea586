//! The options of `ripple soak`, and the command that reruns a soak from them.

use std::path::PathBuf;

use super::plan::Rates;

/// Options of `ripple soak`.
#[derive(Debug, Clone, clap::Args)]
pub struct SoakArgs {
    /// Orders in the load.
    #[arg(long, default_value_t = 500)]
    pub orders: u32,
    /// The seed of the fault plan and the load [default: drawn at random, and printed].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print one JSON object with the report on stdout, and nothing else.
    #[arg(long)]
    pub json: bool,
    /// The SAM template to run.
    #[arg(long, default_value = "template.yaml")]
    pub template: PathBuf,
    /// Stack name, the prefix of every resource [default: ripple-soak- and six random
    /// characters].
    #[arg(long)]
    pub stack: Option<String>,
    /// Leave the stack's resources in the emulator afterwards (to look at a failure).
    #[arg(long)]
    pub keep: bool,
    /// Port of the local HTTP API (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Divide every function timeout, visibility timeout, retention and backoff by this. The
    /// default keeps a function's timeout (5 s) above what the local emulators take to answer a
    /// batch on a busy two-core machine, so that most timeouts are the plan's, not the emulators'.
    #[arg(long, default_value_t = 2.0)]
    pub time_scale: f64,
    /// Seconds to wait for the pipeline to go quiet after the last order.
    #[arg(long, default_value_t = 900)]
    pub timeout: u64,
    /// Orders in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Hold the load back while the consumed queues hold more messages than this (0: never).
    #[arg(long, default_value_t = 300)]
    pub max_backlog: u64,
    /// Share of orders with a line of the hot sku.
    #[arg(long, default_value_t = 0.3)]
    pub hot_share: f64,
    /// Poison messages sent into the queues [default: one per 100 orders, at least one of each
    /// kind].
    #[arg(long)]
    pub poison: Option<u32>,
    /// Seconds SNS stays down once a third of the orders are placed [default: three times the
    /// stream mapping's retry budget, or of ten retries when it retries forever, at least 15;
    /// 0: no outage].
    #[arg(long)]
    pub sns_outage: Option<f64>,
    /// Seconds an order may stay undecided before the sweeper cancels it (the template's
    /// `OrderDeadlineSeconds`, in soak time) [default: twice what a message takes through the
    /// outage with the compressed redelivery backoff, as the template's 2 h are twice its
    /// one-hour outage budget; at least 300].
    #[arg(long)]
    pub order_deadline: Option<f64>,
    /// The fault rates.
    #[command(flatten)]
    pub rates: RateArgs,
}

/// The rate of each fault (a probability per opportunity; 0 turns it off).
#[derive(Debug, Clone, clap::Args)]
pub struct RateArgs {
    /// Per invocation: the function commits its effects and dies before the ack.
    #[arg(long, default_value_t = Rates::default().crash)]
    pub crash_rate: f64,
    /// Per SQS message: delivered a second time, later.
    #[arg(long, default_value_t = Rates::default().duplicate)]
    pub duplicate_rate: f64,
    /// Per SQS message: held back and delivered late.
    #[arg(long, default_value_t = Rates::default().delay)]
    pub delay_rate: f64,
    /// Per SQS batch: handed over shuffled.
    #[arg(long, default_value_t = Rates::default().shuffle)]
    pub shuffle_rate: f64,
    /// Per SDK call: a throttling error (DynamoDB, SNS, SQS).
    #[arg(long, default_value_t = Rates::default().throttle)]
    pub throttle_rate: f64,
    /// Per SDK call: a server error, or a broken connection before sending.
    #[arg(long, default_value_t = Rates::default().transient)]
    pub transient_rate: f64,
    /// Per DynamoDB write: a transaction conflict.
    #[arg(long, default_value_t = Rates::default().conflict)]
    pub conflict_rate: f64,
    /// Per write (every service): applied, then its answer lost.
    #[arg(long, default_value_t = Rates::default().lost_answer)]
    pub lost_answer_rate: f64,
    /// Per SDK call: the answer held until the invocation's timeout has passed.
    #[arg(long, default_value_t = Rates::default().timeout)]
    pub timeout_rate: f64,
}

impl RateArgs {
    pub(super) fn rates(&self) -> Rates {
        Rates {
            crash: self.crash_rate,
            duplicate: self.duplicate_rate,
            delay: self.delay_rate,
            shuffle: self.shuffle_rate,
            throttle: self.throttle_rate,
            transient: self.transient_rate,
            conflict: self.conflict_rate,
            lost_answer: self.lost_answer_rate,
            timeout: self.timeout_rate,
        }
    }
}

/// The seed of `args`, or a fresh one.
pub fn seed_of(args: &SoakArgs) -> u64 {
    args.seed.unwrap_or_else(|| fastrand::u64(..) >> 16)
}

/// The command that reruns this soak: the same seed, load and rates.
pub fn rerun_command(args: &SoakArgs, seed: u64) -> String {
    let r = &args.rates;
    let mut command = format!(
        "cargo run -p ripple -- soak --seed {seed} --orders {} --time-scale {} --hot-share {} \
         --crash-rate {} --duplicate-rate {} --delay-rate {} --shuffle-rate {} \
         --throttle-rate {} --transient-rate {} --conflict-rate {} --lost-answer-rate {} --timeout-rate {}",
        args.orders,
        args.time_scale,
        args.hot_share,
        r.crash_rate,
        r.duplicate_rate,
        r.delay_rate,
        r.shuffle_rate,
        r.throttle_rate,
        r.transient_rate,
        r.conflict_rate,
        r.lost_answer_rate,
        r.timeout_rate,
    );
    command.push_str(&format!(
        " --concurrency {} --max-backlog {}",
        args.concurrency, args.max_backlog
    ));
    if let Some(poison) = args.poison {
        command.push_str(&format!(" --poison {poison}"));
    }
    if let Some(outage) = args.sns_outage {
        command.push_str(&format!(" --sns-outage {outage}"));
    }
    if let Some(deadline) = args.order_deadline {
        command.push_str(&format!(" --order-deadline {deadline}"));
    }
    command
}
