"""The official examples' Fashion-MNIST CNN script, shaped as published: defaults in a dict
passed as config (a sweep would override them), config read back through wandb.config,
per-batch loss, per-epoch accuracy, a sample image and a histogram of the predictions. A
tiny model on random data stands in for Fashion-MNIST."""

import numpy as np
import torch
import torch.nn as nn
import wandb

hyperparameter_defaults = dict(
    dropout=0.5,
    channels_one=4,
    channels_two=8,
    batch_size=10,
    learning_rate=0.001,
    epochs=2,
)

wandb.init(
    config=hyperparameter_defaults,
    project="pytorch-cnn-fashion",
    entity="fashion-team",
    job_type="train",
    group="cnn",
    tags=["fashion", "cnn"],
    notes="baseline CNN",
    reinit=True,
    resume="allow",
    anonymous="allow",
    sync_tensorboard=False,
)
config = wandb.config

labels_map = {
    0: "T-Shirt",
    1: "Trouser",
    2: "Pullover",
    3: "Dress",
    4: "Coat",
    5: "Sandal",
    6: "Shirt",
    7: "Sneaker",
    8: "Bag",
    9: "Ankle Boot",
}


class CNNModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.cnn1 = nn.Conv2d(1, config.channels_one, kernel_size=5, stride=1, padding=2)
        self.relu1 = nn.ReLU()
        self.maxpool1 = nn.MaxPool2d(kernel_size=2)
        self.cnn2 = nn.Conv2d(
            config.channels_one, config.channels_two, kernel_size=5, stride=1, padding=2
        )
        self.relu2 = nn.ReLU()
        self.maxpool2 = nn.MaxPool2d(kernel_size=2)
        self.dropout = nn.Dropout(p=config.dropout)
        self.fc1 = nn.Linear(config.channels_two * 7 * 7, 10)

    def forward(self, x):
        out = self.maxpool1(self.relu1(self.cnn1(x)))
        out = self.maxpool2(self.relu2(self.cnn2(out)))
        out = out.view(out.size(0), -1)
        return self.fc1(self.dropout(out))


torch.manual_seed(0)
train_images = torch.rand(40, 1, 28, 28)
train_labels = torch.randint(0, 10, (40,))
model = CNNModel()
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)

iter = 0
for epoch in range(config.epochs):
    for i in range(0, len(train_images), config.batch_size):
        images = train_images[i : i + config.batch_size]
        labels = train_labels[i : i + config.batch_size]
        optimizer.zero_grad()
        outputs = model(images)
        loss = criterion(outputs, labels)
        loss.backward()
        optimizer.step()
        iter += 1
        wandb.log({"loss": loss.item()})

    correct = 0
    total = 0
    with torch.no_grad():
        outputs = model(train_images)
        _, predicted = torch.max(outputs.data, 1)
        total += train_labels.size(0)
        correct += (predicted == train_labels).sum().item()
    accuracy = 100 * correct / total
    metrics = {"accuracy": accuracy, "loss": loss.item()}
    wandb.log(metrics)
    sample = (train_images[0, 0].numpy() * 255).astype(np.uint8)
    wandb.log(
        {
            "sample": wandb.Image(sample, mode="L", caption=labels_map[int(predicted[0])]),
            "predictions": wandb.Histogram(np_histogram=np.histogram(predicted.numpy(), bins=10)),
            "logits": wandb.Histogram(outputs.numpy(), num_bins=32),
        }
    )

wandb.run.summary["final_accuracy"] = accuracy
wandb.finish()
