"""The official examples' PyTorch MNIST script, shaped as published: hyperparameters set on
wandb.config one by one, wandb.watch, and a list of example images logged per epoch. A tiny
model on random data stands in for MNIST."""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
import wandb
from torch.utils.data import DataLoader, TensorDataset


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, kernel_size=5)
        self.fc1 = nn.Linear(4 * 12 * 12, 10)

    def forward(self, x):
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = x.view(-1, 4 * 12 * 12)
        return F.log_softmax(self.fc1(x), dim=1)


def fake_mnist(n):
    images = torch.rand(n, 1, 28, 28)
    labels = torch.randint(0, 10, (n,))
    return TensorDataset(images, labels)


def train(config, model, device, train_loader, optimizer, epoch):
    model.train()
    for batch_idx, (data, target) in enumerate(train_loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()
        if batch_idx % config.log_interval == 0:
            wandb.log({"train_loss": loss.item()})


def test(config, model, device, test_loader, classes):
    model.eval()
    test_loss = 0
    correct = 0
    example_images = []
    with torch.no_grad():
        for data, target in test_loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction="sum").item()
            pred = output.max(1, keepdim=True)[1]
            correct += pred.eq(target.view_as(pred)).sum().item()
            example_images.append(
                wandb.Image(
                    data[0],
                    caption="Pred: {} Truth: {}".format(
                        classes[pred[0].item()], classes[target[0]]
                    ),
                )
            )
    wandb.log(
        {
            "Examples": example_images,
            "Test Accuracy": 100.0 * correct / len(test_loader.dataset),
            "Test Loss": test_loss / len(test_loader.dataset),
        }
    )


def main():
    parser = argparse.ArgumentParser(description="PyTorch MNIST Example")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()

    wandb.init(project="pytorch-intro")
    wandb.watch_called = (
        False  # Re-run the model without restarting the runtime, unnecessary after our next release
    )

    config = wandb.config  # Initialize config
    config.batch_size = 8  # input batch size for training (default: 64)
    config.test_batch_size = 10  # input batch size for testing (default: 1000)
    config.epochs = args.epochs  # number of epochs to train (default: 10)
    config.lr = 0.1  # learning rate (default: 0.01)
    config.momentum = 0.1  # SGD momentum (default: 0.5)
    config.no_cuda = False  # disables CUDA training
    config.seed = 42  # random seed (default: 42)
    config.log_interval = 2  # how many batches to wait before logging training status

    device = torch.device("cpu")
    torch.manual_seed(config.seed)
    classes = tuple(str(i) for i in range(10))
    train_loader = DataLoader(fake_mnist(32), batch_size=config.batch_size, shuffle=True)
    test_loader = DataLoader(fake_mnist(30), batch_size=config.test_batch_size, shuffle=False)

    model = Net().to(device)
    optimizer = optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)

    wandb.watch(model, log="all", log_freq=2)
    for epoch in range(1, config.epochs + 1):
        train(config, model, device, train_loader, optimizer, epoch)
        test(config, model, device, test_loader, classes)

    torch.save(model.state_dict(), "model.h5")


if __name__ == "__main__":
    main()
