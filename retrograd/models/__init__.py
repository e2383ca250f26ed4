"""Reference models: MLP, LeNet, ResNet, CharRNN, GPT."""
