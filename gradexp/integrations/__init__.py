"""Framework integrations, each in its own module:

- ``torch``: ``gradexp.watch`` / ``gradexp.unwatch`` (gradient and parameter histograms);
- ``lightning``: ``GradexpLogger``, a PyTorch Lightning logger;
- ``transformers``: ``GradexpCallback``, a Hugging Face ``TrainerCallback``;
- ``keras``: ``GradexpCallback``, a Keras 3 callback;
- ``accelerate``: ``GradexpTracker``, an Accelerate tracker.

Each module imports its framework only when it is imported or called, so that
``import gradexp`` never pays for it. What they share (the run they write to, and the
guard that turns a gradexp error into one warning) is in ``_run``.
"""
