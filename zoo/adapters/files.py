"""The file names of a PEFT adapter folder: the one place that spells them."""

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
PICKLE_WEIGHTS_NAME = "adapter_model.bin"
ADAPTER_FILES = (CONFIG_NAME, WEIGHTS_NAME)
