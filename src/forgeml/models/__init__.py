"""One readable nn.Module file per model family, plus the LightningModule tasks that train them."""
