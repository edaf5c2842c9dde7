"""PyTorch twins of the tool's models (src/models/builtin.cpp), for the side-by-side benchmark.

Each class mirrors its LibTorch counterpart layer for layer: the same modules registered in the
same order under the same names (so named_parameters()/named_buffers() read "conv1.weight",
"stack1.block0.conv1.weight", "bn_final.running_mean", "fc.weight", ... exactly as in C++), the same
'same' padding k // 2, BatchNorm momentum 0.01 / eps 1e-3 (Keras's 0.99 / 1e-3), 2x2 'valid'
max-pools, channel-major flatten, the same ReLU/ELU placement, and Keras-style initialisation
(glorot-uniform for the CNNs, he-normal for the ResNets, zero biases).

Parameter totals on 3x32x32 with 10 classes, counting BatchNorm running mean/var as Keras does:
cnn1 2,425,930; cnn2 272,106; cnn3 1,000,824; resnet20 274,442; resnet32 470,218 (v1 and preact).
Run this file to print them.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

ARCHS = ("small", "cnn1", "cnn2", "cnn3", "resnet20", "resnet32")


def conv(cin, cout, k, stride=1):
    # Keras 'same' padding for odd k (symmetric; see the note in src/models/builtin.cpp).
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=True)


def batch_norm(c):
    # Keras BatchNormalization defaults: momentum 0.99 (torch's 0.01) and epsilon 1e-3.
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)


def pool(x):
    return F.max_pool2d(x, 2)


def require_poolable(height, width, pools, arch):
    side = 1 << pools
    if height < side or width < side:
        raise ValueError(f"arch '{arch}' needs inputs of at least {side}x{side}, got {height}x{width}")


def init_keras(net, kind):
    """Conv and dense kernels glorot-uniform or he-normal (fan-in, ReLU gain), biases zero."""
    with torch.no_grad():
        for m in net.modules():
            if m is net or not isinstance(m, (nn.Conv2d, nn.Linear)):
                continue
            if kind == "glorot":
                nn.init.xavier_uniform_(m.weight)
            else:
                nn.init.kaiming_normal_(m.weight, a=0.0, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                m.bias.zero_()


class SmallNet(nn.Module):
    def __init__(self, channels, height, width, classes):
        super().__init__()
        require_poolable(height, width, 2, "small")
        flat = 32 * (height // 4) * (width // 4)
        self.conv1 = conv(channels, 16, 3)
        self.conv2 = conv(16, 32, 3)
        self.fc1 = nn.Linear(flat, 64)
        self.fc2 = nn.Linear(64, classes)
        init_keras(self, "glorot")

    def forward(self, x):
        x = pool(F.relu(self.conv1(x)))
        x = pool(F.relu(self.conv2(x)))
        x = x.flatten(1)
        return self.fc2(F.relu(self.fc1(x)))


class Cnn1(nn.Module):
    def __init__(self, channels, height, width, classes):
        super().__init__()
        require_poolable(height, width, 2, "cnn1")
        flat = 128 * (height // 4) * (width // 4)
        self.conv1 = conv(channels, 64, 3)
        self.conv2 = conv(64, 64, 3)
        self.conv3 = conv(64, 128, 3)
        self.conv4 = conv(128, 128, 3)
        self.fc1 = nn.Linear(flat, 256)
        self.fc2 = nn.Linear(256, 256)
        self.fc3 = nn.Linear(256, classes)
        init_keras(self, "glorot")

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = pool(F.relu(self.conv2(x)))
        x = F.relu(self.conv3(x))
        x = pool(F.relu(self.conv4(x)))
        x = x.flatten(1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class Cnn2(nn.Module):
    WIDTHS = (32, 32, 64, 128, 128)

    def __init__(self, channels, height, width, classes):
        super().__init__()
        require_poolable(height, width, 3, "cnn2")
        cin = channels
        # Registered conv1, bn1, conv2, bn2, ... as in C++.
        for i, w in enumerate(self.WIDTHS):
            setattr(self, f"conv{i + 1}", conv(cin, w, 3))
            setattr(self, f"bn{i + 1}", batch_norm(w))
            cin = w
        self.fc = nn.Linear(128 * (height // 8) * (width // 8), classes)
        init_keras(self, "glorot")

    def unit(self, i, x):
        return getattr(self, f"bn{i + 1}")(F.elu(getattr(self, f"conv{i + 1}")(x)))

    def forward(self, x):
        x = pool(self.unit(1, self.unit(0, x)))
        x = pool(self.unit(2, x))
        x = pool(self.unit(4, self.unit(3, x)))
        x = x.flatten(1)
        return self.fc(x)


class Cnn3(nn.Module):
    WIDTHS = (96, 96, 96, 192, 192, 192)

    def __init__(self, channels, height, width, classes):
        super().__init__()
        require_poolable(height, width, 2, "cnn3")
        cin = channels
        for i, w in enumerate(self.WIDTHS):
            setattr(self, f"conv{i + 1}", conv(cin, w, 3))
            cin = w
        self.conv7 = conv(192, classes, 1)
        self.fc = nn.Linear(classes, classes)
        init_keras(self, "glorot")

    def forward(self, x):
        for i in range(6):
            x = F.relu(getattr(self, f"conv{i + 1}")(x))
            if i in (2, 5):
                x = pool(x)
        x = F.relu(self.conv7(x))
        x = x.mean((2, 3))
        return self.fc(x)


class ResBlock(nn.Module):
    """v1: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x));
    preact, a = relu(bn1(x)): conv2(relu(bn2(conv1(a)))) + (shortcut(a) or x)."""

    def __init__(self, cin, cout, stride, preact):
        super().__init__()
        self.preact = preact
        if preact:
            self.bn1 = batch_norm(cin)
            self.conv1 = conv(cin, cout, 3, stride)
            self.bn2 = batch_norm(cout)
            self.conv2 = conv(cout, cout, 3)
        else:
            self.conv1 = conv(cin, cout, 3, stride)
            self.bn1 = batch_norm(cout)
            self.conv2 = conv(cout, cout, 3)
            self.bn2 = batch_norm(cout)
        self.shortcut = conv(cin, cout, 1, stride) if (cin != cout or stride != 1) else None

    def forward(self, x):
        if self.preact:
            a = F.relu(self.bn1(x))
            y = self.conv2(F.relu(self.bn2(self.conv1(a))))
            return y + (self.shortcut(a) if self.shortcut is not None else x)
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (self.shortcut(x) if self.shortcut is not None else x))


class ResStack(nn.Module):
    def __init__(self, n, cin, cout, stride, preact):
        super().__init__()
        self.n = n
        for i in range(n):
            setattr(self, f"block{i}",
                    ResBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1, preact))

    def forward(self, x):
        for i in range(self.n):
            x = getattr(self, f"block{i}")(x)
        return x


class ResNet(nn.Module):
    def __init__(self, channels, classes, n, preact):
        super().__init__()
        self.preact = preact
        self.conv1 = conv(channels, 16, 3)
        if not preact:
            self.bn1 = batch_norm(16)
        self.stack1 = ResStack(n, 16, 16, 1, preact)
        self.stack2 = ResStack(n, 16, 32, 2, preact)
        self.stack3 = ResStack(n, 32, 64, 2, preact)
        if preact:
            self.bn_final = batch_norm(64)
        self.fc = nn.Linear(64, classes)
        init_keras(self, "he")

    def forward(self, x):
        x = self.conv1(x)
        if not self.preact:
            x = F.relu(self.bn1(x))
        x = self.stack3(self.stack2(self.stack1(x)))
        if self.preact:
            x = F.relu(self.bn_final(x))
        x = x.mean((2, 3))
        return self.fc(x)


def make_model(arch, channels=3, height=32, width=32, classes=10, variant="v1"):
    if min(channels, height, width, classes) < 1:
        raise ValueError("channels, height, width and classes must be positive")
    if variant not in ("v1", "preact"):
        raise ValueError(f"unknown resnet variant '{variant}' (valid: v1, preact)")
    preact = variant == "preact"
    if arch == "small":
        return SmallNet(channels, height, width, classes)
    if arch == "cnn1":
        return Cnn1(channels, height, width, classes)
    if arch == "cnn2":
        return Cnn2(channels, height, width, classes)
    if arch == "cnn3":
        return Cnn3(channels, height, width, classes)
    if arch == "resnet20":
        return ResNet(channels, classes, 3, preact)
    if arch == "resnet32":
        return ResNet(channels, classes, 5, preact)
    raise ValueError(f"unknown arch '{arch}' (valid: {', '.join(ARCHS)})")


def count_params(model):
    """(total, trainable) as the C++ count_params: parameters plus floating-point buffers
    (BatchNorm running mean/var; num_batches_tracked is not a weight)."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    total += sum(b.numel() for b in model.buffers() if b.is_floating_point())
    return total, trainable


if __name__ == "__main__":
    for arch in ARCHS:
        for variant in (("v1", "preact") if arch.startswith("resnet") else ("v1",)):
            total, trainable = count_params(make_model(arch, variant=variant))
            name = arch + (f" ({variant})" if arch.startswith("resnet") else "")
            print(f"{name:20s} total {total:>10,}  trainable {trainable:>10,}")
