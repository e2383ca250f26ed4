"""Random number generation: ``Generator``, ``manual_seed`` and the default generator."""

from __future__ import annotations

import numpy as np


class Generator:
    """A seeded source of random numbers (NumPy's PCG64), like ``torch.Generator``.

    >>> import retrograd as rg
    >>> g = rg.Generator().manual_seed(0)
    >>> rg.rand(2, generator=g).shape
    retrograd.Size([2])
    """

    def __init__(self, device="cpu"):
        self._seed = 67280421310721
        self.rng = np.random.Generator(np.random.PCG64(self._seed))

    def manual_seed(self, seed: int) -> Generator:
        self._seed = int(seed)
        self.rng = np.random.Generator(np.random.PCG64(self._seed))
        return self

    def seed(self) -> int:
        s = int(np.random.SeedSequence().entropy % (2**63))
        self.manual_seed(s)
        return s

    def initial_seed(self) -> int:
        return self._seed

    def get_state(self):
        """The generator state as a uint8 tensor (JSON of the bit generator state)."""
        import json

        from .creation import tensor

        raw = json.dumps(self.rng.bit_generator.state).encode()
        return tensor(np.frombuffer(raw, dtype=np.uint8).copy())

    def set_state(self, state) -> Generator:
        import json

        arr = np.asarray(state, dtype=np.uint8)
        self.rng.bit_generator.state = json.loads(arr.tobytes().decode())
        return self


default_generator = Generator()


def manual_seed(seed: int) -> Generator:
    """Seed the default generator used by every random function without a ``generator``."""
    default_generator.manual_seed(seed)
    return default_generator


def seed() -> int:
    return default_generator.seed()


def initial_seed() -> int:
    return default_generator.initial_seed()


def get_rng_state():
    return default_generator.get_state()


def set_rng_state(new_state) -> None:
    default_generator.set_state(new_state)


def _rng(generator) -> np.random.Generator:
    return (generator or default_generator).rng
