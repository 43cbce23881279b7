//! `bitcraps start`: run this home's validator until Ctrl-C or SIGTERM.
//!
//! Everything that can be checked before the node touches the network is
//! checked by `home::load_setup` (config, genesis, key permissions, our place
//! in genesis, the signing guard state), so a broken home fails here with a
//! message instead of half-starting.

use super::{CliResult, Context};
use bitcraps_node::home;
use bitcraps_node::trace::otel::Telemetry;
use opentelemetry::KeyValue;

#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(ctx: &Context, _args: Args) -> CliResult {
    let home = ctx.home()?;
    let config = home.load_config()?;
    // The setup is loaded before logging starts because the trace exporter
    // names this validator in every span it exports; loading logs nothing
    // (its failures come back as errors).
    let setup = home::load_setup(&home, &config)?;
    let validator = &setup.spec.consensus.validators[usize::from(setup.me)];
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bitcraps")
        .build()
        .map_err(|e| format!("starting the tokio runtime: {e}"))?;
    // OTLP export, if the standard OTEL_* variables ask for it. Its batch
    // processor runs on the runtime, so it starts inside it.
    let telemetry = {
        let _inside = runtime.enter();
        Telemetry::from_env(
            &validator.name,
            vec![
                KeyValue::new("bitcraps.validator", i64::from(setup.me)),
                KeyValue::new("bitcraps.chain_id", setup.spec.consensus.chain_id.clone()),
            ],
        )?
    };
    ctx.init_logging_with(Some(&config.log), telemetry.layer())?;
    if telemetry.enabled() {
        tracing::info!("exporting traces over OTLP (OTEL_EXPORTER_OTLP_* environment)");
    }
    tracing::info!(
        home = %home.root().display(),
        chain_id = %setup.spec.consensus.chain_id,
        name = %validator.name,
        index = setup.me,
        validators = setup.spec.consensus.validators.len(),
        consensus_key = %setup.signer.public_key(),
        signer = setup.signer.backend(),
        identity_key = %setup.identity.public(),
        p2p = %setup.p2p_listen,
        http = %setup.http_listen,
        version = bitcraps_node::VERSION,
        "starting validator"
    );
    // Peers dial the genesis address; a different listen port is usually a
    // mistake (a NAT or proxy in between is the legitimate exception).
    let advertised_port = validator
        .address
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse::<u16>().ok());
    if advertised_port != Some(setup.p2p_listen.port()) {
        tracing::warn!(
            genesis_address = %validator.address,
            p2p_listen = %setup.p2p_listen,
            "the QUIC listen port differs from this validator's address in genesis; peers dial the genesis address"
        );
    }
    let result = runtime.block_on(bitcraps_node::validator::run_with_correlation(
        setup,
        config.correlation.tracker_config(),
        shutdown_signal(),
    ));
    // Flush the spans still queued, while the runtime that exports them runs.
    telemetry.shutdown();
    result?;
    tracing::info!("validator stopped");
    Ok(())
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM. A handler that cannot be
/// installed never fires (logged), rather than stopping the node at once.
async fn shutdown_signal() {
    let ctrl_c = async {
        match tokio::signal::ctrl_c().await {
            Ok(()) => tracing::info!("SIGINT received, shutting down"),
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
                tracing::info!("SIGTERM received, shutting down");
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
