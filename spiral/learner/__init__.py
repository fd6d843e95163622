"""The training side: DeepSpeed learner, sample batching, weight streaming, checkpoints, distributed helpers.

Import the submodules directly (`spiral.learner.learner.Learner`, `spiral.learner.checkpoint`); this
package imports nothing so that light users (e.g. `distributed`) do not pull in DeepSpeed.
"""
