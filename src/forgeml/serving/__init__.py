"""Real-time prediction: a logged model exported to ONNX (`export`), its verified bundle
(`bundle`), ONNX Runtime sessions (`runtime`), the HTTP server (`app`, `server`) and batch
prediction over files (`batch`). Only `export` imports torch."""
