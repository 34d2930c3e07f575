"""yacs CfgNode whose command-line overrides reject unknown keys with a KeyError naming them.

yacs already raises ``KeyError("Non-existent config key: ...")`` for unknown keys in
a YAML file but only an AssertionError for ``KEY VALUE`` overrides; both now fail
the same way.
"""
from typing import List

from yacs.config import CfgNode as _YacsCfgNode


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
