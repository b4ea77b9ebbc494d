"""Keras 3 with gradexp: ``GradexpCallback`` records the epochs (or batches) of ``fit()``.

Any backend; this script uses PyTorch unless ``KERAS_BACKEND`` says otherwise. A small
classifier on synthetic data; nothing is downloaded. Needs ``pip install keras`` (or
``pip install 'gradexp[integrations]'``). With no server configured it logs offline.

    python examples/keras_train.py --epochs 5 --log-freq batch
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported

import keras
import numpy as np

from gradexp.integrations.keras import GradexpCallback


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--log-freq", default="epoch", help="epoch, batch, or a number of batches")
    parser.add_argument("--project", default="examples")
    args = parser.parse_args()
    log_freq = int(args.log_freq) if args.log_freq.isdigit() else args.log_freq

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2048, 16)).astype("float32")
    y = (np.sin(x[:, 0]) + x[:, 1] > 0).astype("float32")
    model = keras.Sequential(
        [
            keras.Input((16,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    schedule = keras.optimizers.schedules.CosineDecay(1e-2, decay_steps=args.epochs * 52)
    model.compile(keras.optimizers.Adam(schedule), loss="binary_crossentropy", metrics=["accuracy"])

    callback = GradexpCallback(project=args.project, name="keras-classifier", log_freq=log_freq)
    say_where = keras.callbacks.LambdaCallback(
        on_train_begin=lambda logs: print(
            f"run {callback.run.id}: {callback.run.url or callback.run.dir}"
        )
    )
    model.fit(
        x,
        y,
        epochs=args.epochs,
        batch_size=32,
        validation_split=0.2,
        verbose=0,
        callbacks=[callback, say_where],
    )


if __name__ == "__main__":
    main()
