"""The configuration layer: profiles (YAML) and their typed, checked sections.

- :mod:`hyperkit.config.profiles`: the one loader (built-in or user profiles, ``--set`` overrides);
- :mod:`hyperkit.config.schema`: the one validator (a mapping against a typed dataclass);
- :mod:`hyperkit.config.sections`: the typed sections;
- :func:`protocol_for` (in :mod:`~hyperkit.config.profiles`): the protocol a checkpoint is evaluated with.

It imports only :mod:`hyperkit.errors` and :mod:`hyperkit.files`, so every layer may use it.
"""

from hyperkit.config.profiles import (PROFILES, combine_overrides, differences, dump_config, load_profile, merge_config,
                                      parse_assignment, parse_override, protocol_for)
from hyperkit.config.sections import (CENTRE_PRIOR_METHODS, METHODS, ONE_SHOT_METHODS, DataConfig, EvalConfig,
                                      ModelConfig, SupervisedConfig, TrainConfig, check_config, check_seed, reread,
                                      reread_config)

__all__ = ["PROFILES", "load_profile", "merge_config", "parse_assignment", "parse_override", "combine_overrides",
           "dump_config", "DataConfig", "ModelConfig", "TrainConfig", "check_config", "check_seed", "METHODS",
           "ONE_SHOT_METHODS", "CENTRE_PRIOR_METHODS", "EvalConfig", "SupervisedConfig", "protocol_for", "differences",
           "reread", "reread_config"]
