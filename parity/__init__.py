"""parity: prove that deployed DALI preprocessing computes what the MMPretrain reference computes."""

from parity.api import (
    assert_logits_close,
    assert_not_degenerate,
    assert_preprocessing_parity,
    assert_stage_close,
    assert_triton_parity,
    check_preprocessing_parity,
)
from parity.compare import StageResult
from parity.config import ParityConfig, Tolerance, load_config
from parity.diagnose import Cause, Diagnosis
from parity.engine import Harness, ImageResult
from parity.errors import ParityConfigError, ParityDaliError, ParityImageError, ParityReferenceError, ParityUsageError

__all__ = [
    "Cause", "Diagnosis", "Harness", "ImageResult", "ParityConfig", "ParityConfigError", "ParityDaliError",
    "ParityImageError", "ParityReferenceError", "ParityUsageError", "StageResult", "Tolerance",
    "assert_logits_close", "assert_not_degenerate", "assert_preprocessing_parity", "assert_stage_close",
    "assert_triton_parity", "check_preprocessing_parity", "load_config",
]
