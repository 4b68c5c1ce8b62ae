"""Pipeline specs (YAML under ``pipelines/``) and their runner: ``faceswap run SPEC``."""

from faceswap.pipeline.runner import RunConfig, RunResult, StageOutcome, run_pipeline
from faceswap.pipeline.spec import STAGE_OUTPUTS, Spec, Stage, load_spec

__all__ = [
    "STAGE_OUTPUTS",
    "RunConfig",
    "RunResult",
    "Spec",
    "Stage",
    "StageOutcome",
    "load_spec",
    "run_pipeline",
]
