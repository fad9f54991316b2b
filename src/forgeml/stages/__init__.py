"""Pipeline stages: one module each, one public function taking the composed config."""
