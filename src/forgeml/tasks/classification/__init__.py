"""Image classification: digits, MNIST, Fashion-MNIST with MLP/CNN."""
