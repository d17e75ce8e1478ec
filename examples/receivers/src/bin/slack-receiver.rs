//! `slack-receiver`: a stand-in for a Slack incoming webhook. POST messages to
//! `/services/T000/B000/XXXX`; read what was accepted at `GET /received`.

use clap::Parser;
use receivers::CommonArgs;
use receivers::slack::SlackReceiver;

/// Accepts and rejects messages the way a Slack incoming webhook does.
#[derive(Debug, Parser)]
#[command(name = "slack-receiver", version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    receivers::init_tracing();
    let args = Args::parse();
    let receiver = SlackReceiver::new(args.common.gate());
    receivers::serve(args.common.listen, receiver.router()).await
}
