"""dynscaling: better answers from an LLM for a batch of questions under a fixed budget, with no verifier.

Sample several answers per question, spend more where they disagree, and return the plurality answer with a
confidence and an exact bill. See DESIGN.md for the method.
"""

from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version

from .answers import AnswerClusterer, answers_match, canonical_key, extract_answer
from .budget import Budget, Ledger
from .datasets import DATASETS, DatasetSpec, load_dataset, load_hf_dataset
from .drivers import replay, run_replay
from .engine import Engine, SampleRequest
from .errors import (
    BackendError,
    ConfigError,
    DynscalingError,
    InputError,
    PoolExhaustedError,
    ReplayRefusedError,
)
from .pools import Pool, bundled_pools, load_pool
from .samplers import IntegratedSampler, ParallelSampler, Prompts, SequentialSampler
from .strategies import STRATEGIES, Strategy, parse_strategy
from .types import Question, QuestionResult, RunResult, Sample, Usage
from .votes import Tally, leader_confidence

try:
    __version__ = _version("dynscaling")
except _PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0"

__all__ = [
    "DATASETS",
    "STRATEGIES",
    "AnswerClusterer",
    "BackendError",
    "Budget",
    "ConfigError",
    "DatasetSpec",
    "DynscalingError",
    "Engine",
    "InputError",
    "IntegratedSampler",
    "Ledger",
    "ParallelSampler",
    "Pool",
    "PoolExhaustedError",
    "Prompts",
    "Question",
    "QuestionResult",
    "ReplayRefusedError",
    "RunResult",
    "Sample",
    "SampleRequest",
    "SequentialSampler",
    "Strategy",
    "Tally",
    "Usage",
    "__version__",
    "answers_match",
    "bundled_pools",
    "canonical_key",
    "extract_answer",
    "leader_confidence",
    "load_dataset",
    "load_hf_dataset",
    "load_pool",
    "parse_strategy",
    "replay",
    "run_replay",
]
