"""``python -m lora_np <command>``: see :mod:`lora_np.cli`."""

from lora_np.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
