"""Command line and start-up shared by the tools: the benchmark's arguments, config, logging."""
from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass
from typing import List, Optional

import torch

from maskrcnn_benchmark.config import cfg as default_cfg
from maskrcnn_benchmark.data.dataset_check import check_config_datasets, require_clean
from maskrcnn_benchmark.utils.collect_env import collect_env_info
from maskrcnn_benchmark.utils.comm import get_rank, get_world_size
from maskrcnn_benchmark.utils.distributed import init_distributed
from maskrcnn_benchmark.utils.env import seed_all
from maskrcnn_benchmark.utils.logger import setup_logger
from maskrcnn_benchmark.utils.miscellaneous import mkdir, save_config


def default_argument_parser(description: str) -> argparse.ArgumentParser:
    """``--config-file FILE [--local_rank N | --local-rank N] [--skip-test] [KEY VALUE ...]``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config-file", default="", metavar="FILE", help="path to the config file")
    parser.add_argument("--local_rank", "--local-rank", dest="local_rank", type=int, default=None,
                        help="set by torch.distributed.launch; torchrun sets LOCAL_RANK instead")
    parser.add_argument("--skip-test", dest="skip_test", action="store_true",
                        help="do not test the final model")
    parser.add_argument("opts", default=None, nargs=argparse.REMAINDER,
                        help="config overrides as KEY VALUE pairs")
    return parser


@dataclass
class RunContext:
    """What a tool needs after start-up."""

    cfg: object
    logger: logging.Logger
    distributed: bool
    local_rank: int
    device: torch.device


def load_config(cfg_file: str, opts: Optional[List[str]] = None):
    """A frozen copy of the defaults merged with ``cfg_file`` (if given) and ``KEY VALUE`` overrides."""
    cfg = default_cfg.clone()
    if cfg_file:
        cfg.merge_from_file(cfg_file)
    cfg.merge_from_list(list(opts or []))
    cfg.freeze()
    return cfg


def setup(cfg_file: str, opts: Optional[List[str]] = None, local_rank: Optional[int] = None,
          logger_name: str = "maskrcnn_benchmark") -> RunContext:
    """Merge and freeze the config, join the process group, create OUTPUT_DIR, log and save the config,
    and seed the random generators when SEED >= 0.

    The device comes from MODEL.DEVICE (one GPU per process on CUDA); the config
    actually used is written to ``OUTPUT_DIR/config.yml``. With DATASETS.CHECK_AT_START
    the datasets' files get the cheap part of tools/check_dataset.py first, so bad data
    stops the run with every problem listed before anything is built.
    """
    cfg = load_config(cfg_file, opts)
    if cfg.DATASETS.CHECK_AT_START:
        require_clean(check_config_datasets(cfg, deep=False))
    distributed, local_rank, device = init_distributed(local_rank, cfg.MODEL.DEVICE,
                                                       cfg.DISTRIBUTED.COLLECTIVE_TIMEOUT_S)
    if cfg.OUTPUT_DIR:
        mkdir(cfg.OUTPUT_DIR)
    logger = setup_logger(logger_name, cfg.OUTPUT_DIR or None, get_rank())
    logger.info("Using %d process(es), device %s", get_world_size(), device)
    logger.info("Environment:\n%s", collect_env_info())
    if cfg_file:
        logger.info("Loaded configuration file %s", cfg_file)
    logger.info("Running with config:\n%s", cfg)
    if cfg.OUTPUT_DIR:
        config_path = os.path.join(cfg.OUTPUT_DIR, "config.yml")
        save_config(cfg, config_path)
        logger.info("Saved the config to %s", config_path)
    if cfg.SEED >= 0:
        seed_all(cfg.SEED)
        logger.info("Seeded Python, NumPy and torch with SEED %d", cfg.SEED)
    return RunContext(cfg, logger, distributed, local_rank, device)
