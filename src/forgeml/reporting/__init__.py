"""Report figures (matplotlib) and templates (Jinja2): self-contained HTML plus Markdown."""
