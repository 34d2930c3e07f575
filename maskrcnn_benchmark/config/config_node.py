"""yacs CfgNode with strict overrides and detectron2-style ``_BASE_`` inheritance.

- yacs already raises ``KeyError("Non-existent config key: ...")`` for unknown keys
  in a YAML file but only an AssertionError for ``KEY VALUE`` overrides; both now
  fail the same way.
- A YAML file may start with ``_BASE_: other.yaml`` (a path relative to the file):
  the base is merged first, then the file's own keys, so mode or predictor
  variants of a config need not repeat it.
"""
import os
from typing import List

import yaml
from yacs.config import CfgNode as _YacsCfgNode

BASE_KEY = "_BASE_"


class CfgNode(_YacsCfgNode):
    def merge_from_list(self, cfg_list: List[str]) -> None:
        if len(cfg_list) % 2 != 0:
            raise ValueError(f"Overrides must be KEY VALUE pairs, got an odd number of items: {cfg_list}")
        for full_key in cfg_list[0::2]:
            node = self
            for part in full_key.split("."):
                if not isinstance(node, _YacsCfgNode) or part not in node:
                    raise KeyError(f"Non-existent config key: {full_key}")
                node = node[part]
        super().merge_from_list(cfg_list)

    def merge_from_file(self, cfg_filename: str, _chain: tuple = ()) -> None:
        path = os.path.abspath(cfg_filename)
        if path in _chain:
            raise ValueError(f"{BASE_KEY} cycle through {path}")
        with open(path, "r") as f:
            loaded = yaml.safe_load(f) or {}
        base = loaded.pop(BASE_KEY, None)
        if base is not None:
            self.merge_from_file(os.path.join(os.path.dirname(path), base), _chain + (path,))
        self.merge_from_other_cfg(_YacsCfgNode(loaded))
