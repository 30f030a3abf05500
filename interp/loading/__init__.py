"""Loading models from outside the toolkit's store: Hugging Face directories and hub ids,
PEFT LoRA adapters, prompt/completion JSONL data, and the export of the toolkit's own models
to Hugging Face format. Imports storage and studies; never analysis, reports or the CLIs.
"""
