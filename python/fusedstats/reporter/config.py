"""The reporter's settings: Metta's fields, then what fusedstats adds."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class StatsReporterConfig(BaseModel):
    """Settings of :class:`~fusedstats.reporter.StatsReporter`; unknown fields are rejected.

    Intervals are in epochs; 0 (or less) turns the thing off.

    Example:
        >>> StatsReporterConfig(interval=2).grad_mean_variance_interval
        50
        >>> StatsReporterConfig(intervall=2)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        pydantic_core._pydantic_core.ValidationError: 1 validation error for StatsReporterConfig
        ...
    """

    model_config = ConfigDict(extra="forbid")

    # Metta's fields.
    report_to_wandb: bool = True
    report_to_stats_client: bool = True
    report_to_console: bool = True
    grad_mean_variance_interval: int = 50
    interval: int = 1
    analyze_weights_interval: int = 0

    # Payload keys (full names, "env_game/score") set to 0.0 in an epoch that lacks
    # them, each also reported as "<key>.avg": the mean of its finite values at the last
    # `rolling_window` reports, this one included (NaN if none was finite).
    default_zero_metrics: tuple[str, ...] = ()
    rolling_window: int = Field(default=5, ge=1)

    # Sinks: all I/O runs off the training thread, each sink on its own worker thread
    # (fusedstats.sinks.SinkRunner).
    jsonl_path: str | None = None  # a JSONL sink writing here
    spool_dir: str | None = None  # where payloads no sink could take are kept
    sink_queue_size: int = Field(default=64, ge=1)
    sink_timeout_s: float = Field(default=10.0, gt=0)  # per sink call
    sink_close_timeout_s: float = Field(default=30.0, gt=0)  # finalize: flush + close, in all
    sink_retries: int = Field(default=2, ge=0)
    sink_backoff_s: float = Field(default=0.05, ge=0)
    # A sink whose payloads fail this many times in a row is not called for a cool-down
    # (doubled at each reopening, up to 60 s): its payloads go to its spool meanwhile.
    sink_breaker_failures: int = Field(default=3, ge=1)
    sink_breaker_cooldown_s: float = Field(default=5.0, ge=0)
    console_keys: tuple[str, ...] | None = None  # None: the console sink's default keys

    # TensorBoard: a sink writing event files here (needs the `tensorboard` package).
    tensorboard_dir: str | None = None
    # On grad-stats epochs, also report each parameter's gradient stats as
    # "grad_param/<parameter name>/<stat>" keys; the TensorBoard sink draws them as
    # histograms across parameters. Off by default: it adds ~5 keys per parameter.
    per_parameter_grad_stats: bool = False

    # Model health (fusedstats.health; payload keys in docs/reporter.md). Extended
    # stats add grad/kurtosis, grad/min_abs_nonzero, grad/dynamic_range_log2 and
    # grad/underflow_<fmt>, grad/overflow_<fmt> for bf16, fp16, e4m3, e5m2 (weights/...
    # likewise) to the epochs that compute gradient (weight) stats, in the same pass.
    extended_grad_stats: bool = False
    extended_weight_stats: bool = False
    # The exponent histograms of the extended passes as exp_hist/<base>/<bin> keys
    # (gradients with extended_grad_stats, activations with activation_extended); the
    # TensorBoard sink draws them as histograms.
    exponent_histograms: bool = False
    # Activations of the policy's leaf modules (or activation_modules), watched with
    # forward hooks: one policy forward in activation_stats_every is recorded, and the
    # act/<module>/... keys (accumulated since the previous report) are reported every
    # activation_stats_interval epochs (0: no watching). See fusedstats.watch.
    activation_stats_interval: int = 0
    activation_stats_every: int = Field(default=10, ge=1)
    # What a step is: each forward of the policy, or each WatchHandle.step() call of the
    # trainer (reporter.activation_watch.step() after each optimizer step).
    activation_step_by: Literal["forward", "manual"] = "forward"
    activation_grad_stats: bool = False  # also act_grad/<module>/... (gradient hooks)
    activation_dormant_tau: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    activation_extended: bool = False
    activation_modules: tuple[str, ...] | None = None
    # optim/<field> and optim/<kind>/<field> of the optimizer's state tensors (exp_avg,
    # exp_avg_sq, momentum_buffer, ...) every optimizer_stats_interval epochs (0: never).
    optimizer_stats_interval: int = 0
    optimizer_stats_per_parameter: bool = False

    # Distributed (torch.distributed initialized, world size > 1): rollout stats of all
    # ranks are merged into rank 0's payload when True; each rank reports only its own
    # environments when False (Metta's behaviour).
    merge_rollout_across_ranks: bool = True
