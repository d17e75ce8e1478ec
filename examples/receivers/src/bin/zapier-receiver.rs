//! `zapier-receiver`: a stand-in for a Zapier catch hook. Send hooks to
//! `/hooks/catch/{account}/{hook}/`; read what was caught at `GET /received`.

use clap::Parser;
use receivers::CommonArgs;
use receivers::zapier::ZapierReceiver;

/// Catches hooks the way a Zapier "Catch Hook" trigger does.
#[derive(Debug, Parser)]
#[command(name = "zapier-receiver", version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    receivers::init_tracing();
    let args = Args::parse();
    let receiver = ZapierReceiver::new(args.common.gate());
    receivers::serve(args.common.listen, receiver.router()).await
}
