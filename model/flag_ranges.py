"""Valid ranges of float command-line flags (absl), declared next to each flag's definition.

    flags.DEFINE_float("learning_rate", 5e-4, "Initial Adam learning rate.")
    flag_ranges.require("learning_rate", above=0)

absl checks them when the command line is parsed, before the program does anything: a value out
of range, NaN or infinite ends the program with one line naming the flag and the value,

    FATAL Flags parsing error: flag --learning_rate=-1.0: must be a finite number > 0

(absl then adds a line pointing to --helpfull). Integer flags use absl's own
`lower_bound` / `upper_bound` arguments of DEFINE_integer instead.

Imports nothing from the project, so that programs in every folder can use it.
"""
import math

from absl import flags


def require(name, above=None, at_least=None, at_most=None, flag_values=flags.FLAGS):
    """Registers the validator of float flag `name`: finite, and > above, >= at_least, <= at_most
    (each bound optional). A flag left at None (no default, not given) passes."""
    bounds = [("> %g" % above, lambda v: v > above) if above is not None else None,
              (">= %g" % at_least, lambda v: v >= at_least) if at_least is not None else None,
              ("<= %g" % at_most, lambda v: v <= at_most) if at_most is not None else None]
    bounds = [bound for bound in bounds if bound is not None]
    message = "must be a finite number" + "".join(
        (" " if index == 0 else " and ") + text for index, (text, _) in enumerate(bounds))
    flags.register_validator(
        name, lambda value: value is None or (math.isfinite(value) and all(ok(value) for _, ok in bounds)),
        message=message, flag_values=flag_values)
