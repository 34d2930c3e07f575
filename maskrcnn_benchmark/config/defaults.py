"""Default configuration: the Scene-Graph-Benchmark's keys and default values.

Every key a benchmark YAML file may set exists here with the benchmark's default,
so existing config files and ``KEY VALUE`` command-line overrides keep working.
Keys that the benchmark reads nowhere (or that this project does not act on yet)
are kept so that old YAML files still load; their comment says so. Per-key
meaning and the values of the benchmark's X-101-FPN YAML are documented in
``docs`` of the shared reference (section 2).
"""
from .config_node import CfgNode as CN

_C = CN()

# ---------------------------------------------------------------------------
# MODEL: top-level switches
# ---------------------------------------------------------------------------
_C.MODEL = CN()
_C.MODEL.RPN_ONLY = False
_C.MODEL.MASK_ON = False
_C.MODEL.RETINANET_ON = False
_C.MODEL.KEYPOINT_ON = False
_C.MODEL.ATTRIBUTE_ON = False
_C.MODEL.RELATION_ON = False
_C.MODEL.DEVICE = "cuda"
_C.MODEL.META_ARCHITECTURE = "GeneralizedRCNN"
_C.MODEL.CLS_AGNOSTIC_BBOX_REG = False
# Backbone initialisation (a file path; the benchmark's "catalog://" names need a local file).
_C.MODEL.WEIGHT = ""
# Detector checkpoint used to initialise relation training.
_C.MODEL.PRETRAINED_DETECTOR_CKPT = ""
# Dataset-level flip flag; training images are flipped by the transforms regardless.
_C.MODEL.FLIP_AUG = False

# ---------------------------------------------------------------------------
# INPUT
# ---------------------------------------------------------------------------
_C.INPUT = CN()
_C.INPUT.MIN_SIZE_TRAIN = (800,)  # shorter side, a random choice per image
_C.INPUT.MAX_SIZE_TRAIN = 1333
_C.INPUT.MIN_SIZE_TEST = 800
_C.INPUT.MAX_SIZE_TEST = 1333
_C.INPUT.PIXEL_MEAN = [102.9801, 115.9465, 122.7717]  # BGR, 0-255
_C.INPUT.PIXEL_STD = [1.0, 1.0, 1.0]
_C.INPUT.TO_BGR255 = True
_C.INPUT.BRIGHTNESS = 0.0
_C.INPUT.CONTRAST = 0.0
_C.INPUT.SATURATION = 0.0
_C.INPUT.HUE = 0.0
_C.INPUT.VERTICAL_FLIP_PROB_TRAIN = 0.0

# ---------------------------------------------------------------------------
# DATASETS: names resolved by maskrcnn_benchmark/config/paths_catalog.py
# ---------------------------------------------------------------------------
_C.DATASETS = CN()
_C.DATASETS.TRAIN = ()
_C.DATASETS.VAL = ()
_C.DATASETS.TEST = ()
# Check the VG-format files of TRAIN, VAL and TEST when a tool starts (presence, h5 keys, dtypes,
# shapes and index ranges; no image decoding) and stop with every problem listed before a model
# is built. tools/check_dataset.py runs the full check (box values, labels, images).
_C.DATASETS.CHECK_AT_START = True
# Split evaluated by relation_test_net.py: "train", "val" or "test" (None = DATASETS.TEST).
_C.DATASETS.TO_TEST = None
# Folder under which the catalog's relative dataset paths are resolved.
_C.DATASETS.DATA_DIR = "datasets"
# VG-format training targets also carry "relation_all": every GT predicate of each box pair
# ((N, N, C) 0/1), for losses that use them all (the benchmark keeps one random predicate per pair).
_C.DATASETS.KEEP_ALL_PREDICATES = False

# ---------------------------------------------------------------------------
# DATALOADER
# ---------------------------------------------------------------------------
_C.DATALOADER = CN()
_C.DATALOADER.NUM_WORKERS = 4
_C.DATALOADER.SIZE_DIVISIBILITY = 0  # pad batched images to a multiple of this
_C.DATALOADER.ASPECT_RATIO_GROUPING = True

# ---------------------------------------------------------------------------
# Backbone
# ---------------------------------------------------------------------------
_C.MODEL.BACKBONE = CN()
_C.MODEL.BACKBONE.CONV_BODY = "R-50-C4"
_C.MODEL.BACKBONE.FREEZE_CONV_BODY_AT = 2  # stem and layer1 never train

_C.MODEL.FPN = CN()
_C.MODEL.FPN.USE_GN = False
_C.MODEL.FPN.USE_RELU = False

_C.MODEL.GROUP_NORM = CN()
_C.MODEL.GROUP_NORM.DIM_PER_GP = -1
_C.MODEL.GROUP_NORM.NUM_GROUPS = 32
_C.MODEL.GROUP_NORM.EPSILON = 1e-5

_C.MODEL.RESNETS = CN()
_C.MODEL.RESNETS.NUM_GROUPS = 1
_C.MODEL.RESNETS.WIDTH_PER_GROUP = 64
_C.MODEL.RESNETS.STRIDE_IN_1X1 = True
_C.MODEL.RESNETS.TRANS_FUNC = "BottleneckWithFixedBatchNorm"
_C.MODEL.RESNETS.STEM_FUNC = "StemWithFixedBatchNorm"
_C.MODEL.RESNETS.RES5_DILATION = 1
_C.MODEL.RESNETS.BACKBONE_OUT_CHANNELS = 256 * 4
_C.MODEL.RESNETS.RES2_OUT_CHANNELS = 256
_C.MODEL.RESNETS.STEM_OUT_CHANNELS = 64
_C.MODEL.RESNETS.STAGE_WITH_DCN = (False, False, False, False)
_C.MODEL.RESNETS.WITH_MODULATED_DCN = False
_C.MODEL.RESNETS.DEFORMABLE_GROUPS = 1

# ---------------------------------------------------------------------------
# RPN
# ---------------------------------------------------------------------------
_C.MODEL.RPN = CN()
_C.MODEL.RPN.USE_FPN = False
_C.MODEL.RPN.RPN_MID_CHANNEL = 512
_C.MODEL.RPN.ANCHOR_SIZES = (32, 64, 128, 256, 512)
_C.MODEL.RPN.ANCHOR_STRIDE = (16,)
_C.MODEL.RPN.ASPECT_RATIOS = (0.5, 1.0, 2.0)
_C.MODEL.RPN.STRADDLE_THRESH = 0
_C.MODEL.RPN.FG_IOU_THRESHOLD = 0.7
_C.MODEL.RPN.BG_IOU_THRESHOLD = 0.3
_C.MODEL.RPN.BATCH_SIZE_PER_IMAGE = 256
_C.MODEL.RPN.POSITIVE_FRACTION = 0.5
_C.MODEL.RPN.PRE_NMS_TOP_N_TRAIN = 12000  # per FPN level
_C.MODEL.RPN.PRE_NMS_TOP_N_TEST = 6000
_C.MODEL.RPN.POST_NMS_TOP_N_TRAIN = 2000
_C.MODEL.RPN.POST_NMS_TOP_N_TEST = 1000
_C.MODEL.RPN.NMS_THRESH = 0.7
_C.MODEL.RPN.MIN_SIZE = 0
_C.MODEL.RPN.FPN_POST_NMS_TOP_N_TRAIN = 2000  # per image after merging levels
_C.MODEL.RPN.FPN_POST_NMS_TOP_N_TEST = 2000
_C.MODEL.RPN.FPN_POST_NMS_PER_BATCH = True
_C.MODEL.RPN.RPN_HEAD = "SingleConvRPNHead"

# ---------------------------------------------------------------------------
# ROI heads
# ---------------------------------------------------------------------------
_C.MODEL.ROI_HEADS = CN()
_C.MODEL.ROI_HEADS.USE_FPN = False
_C.MODEL.ROI_HEADS.FG_IOU_THRESHOLD = 0.5
_C.MODEL.ROI_HEADS.BG_IOU_THRESHOLD = 0.3
_C.MODEL.ROI_HEADS.BBOX_REG_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
_C.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 256
_C.MODEL.ROI_HEADS.POSITIVE_FRACTION = 0.25
_C.MODEL.ROI_HEADS.SCORE_THRESH = 0.01
_C.MODEL.ROI_HEADS.NMS = 0.3
_C.MODEL.ROI_HEADS.POST_NMS_PER_CLS_TOPN = 300
# False (the benchmark): the per-class cap keeps the first POST_NMS_PER_CLS_TOPN NMS survivors in
# proposal order, as its NMS returned kept indices in index order. True: the best ones by score.
_C.MODEL.ROI_HEADS.POST_NMS_PER_CLS_TOPN_BY_SCORE = False
_C.MODEL.ROI_HEADS.NMS_FILTER_DUPLICATES = False  # keep one label per box
_C.MODEL.ROI_HEADS.DETECTIONS_PER_IMG = 256

_C.MODEL.ROI_BOX_HEAD = CN()
_C.MODEL.ROI_BOX_HEAD.FEATURE_EXTRACTOR = "ResNet50Conv5ROIFeatureExtractor"
_C.MODEL.ROI_BOX_HEAD.PREDICTOR = "FastRCNNPredictor"
_C.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 14
_C.MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO = 0
_C.MODEL.ROI_BOX_HEAD.POOLER_SCALES = (1.0 / 16,)
_C.MODEL.ROI_BOX_HEAD.NUM_CLASSES = 81
_C.MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM = 2048
_C.MODEL.ROI_BOX_HEAD.USE_GN = False
_C.MODEL.ROI_BOX_HEAD.DILATION = 1
_C.MODEL.ROI_BOX_HEAD.CONV_HEAD_DIM = 256
_C.MODEL.ROI_BOX_HEAD.NUM_STACKED_CONVS = 4

# Attribute head: only built when MODEL.ATTRIBUTE_ON.
_C.MODEL.ROI_ATTRIBUTE_HEAD = CN()
_C.MODEL.ROI_ATTRIBUTE_HEAD.FEATURE_EXTRACTOR = "FPN2MLPFeatureExtractor"
_C.MODEL.ROI_ATTRIBUTE_HEAD.PREDICTOR = "FPNPredictor"
_C.MODEL.ROI_ATTRIBUTE_HEAD.SHARE_BOX_FEATURE_EXTRACTOR = True
_C.MODEL.ROI_ATTRIBUTE_HEAD.SAMPLE_PER_CLASS = 3
_C.MODEL.ROI_ATTRIBUTE_HEAD.POS_WEIGHT = 5.0
_C.MODEL.ROI_ATTRIBUTE_HEAD.USE_BINARY_LOSS = True
_C.MODEL.ROI_ATTRIBUTE_HEAD.ATTRIBUTE_LOSS_WEIGHT = 0.1
_C.MODEL.ROI_ATTRIBUTE_HEAD.NUM_ATTRIBUTES = 201
_C.MODEL.ROI_ATTRIBUTE_HEAD.MAX_ATTRIBUTES = 10
_C.MODEL.ROI_ATTRIBUTE_HEAD.ATTRIBUTE_BGFG_SAMPLE = True
_C.MODEL.ROI_ATTRIBUTE_HEAD.ATTRIBUTE_BGFG_RATIO = 3

# ---------------------------------------------------------------------------
# Relation head. Modes: PredCls = USE_GT_BOX and USE_GT_OBJECT_LABEL;
# SGCls = USE_GT_BOX only; SGDet = neither.
# ---------------------------------------------------------------------------
_C.MODEL.ROI_RELATION_HEAD = CN()
_C.MODEL.ROI_RELATION_HEAD.PREDICTOR = "MotifPredictor"
_C.MODEL.ROI_RELATION_HEAD.FEATURE_EXTRACTOR = "RelationFeatureExtractor"
_C.MODEL.ROI_RELATION_HEAD.POOLING_ALL_LEVELS = True
_C.MODEL.ROI_RELATION_HEAD.NUM_CLASSES = 51  # predicates + background
_C.MODEL.ROI_RELATION_HEAD.BATCH_SIZE_PER_IMAGE = 64
_C.MODEL.ROI_RELATION_HEAD.POSITIVE_FRACTION = 0.25
_C.MODEL.ROI_RELATION_HEAD.USE_GT_BOX = True
_C.MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL = False
_C.MODEL.ROI_RELATION_HEAD.EMBED_DIM = 200
_C.MODEL.ROI_RELATION_HEAD.CONTEXT_DROPOUT_RATE = 0.2
_C.MODEL.ROI_RELATION_HEAD.CONTEXT_HIDDEN_DIM = 512
_C.MODEL.ROI_RELATION_HEAD.CONTEXT_POOLING_DIM = 4096
_C.MODEL.ROI_RELATION_HEAD.CONTEXT_OBJ_LAYER = 1
_C.MODEL.ROI_RELATION_HEAD.CONTEXT_REL_LAYER = 1
_C.MODEL.ROI_RELATION_HEAD.LABEL_SMOOTHING_LOSS = False
_C.MODEL.ROI_RELATION_HEAD.PREDICT_USE_VISION = True
_C.MODEL.ROI_RELATION_HEAD.PREDICT_USE_BIAS = True
_C.MODEL.ROI_RELATION_HEAD.REQUIRE_BOX_OVERLAP = True
_C.MODEL.ROI_RELATION_HEAD.NUM_SAMPLE_PER_GT_REL = 4
_C.MODEL.ROI_RELATION_HEAD.ADD_GTBOX_TO_PROPOSAL_IN_TRAIN = False
# Predicate proportions: the benchmark builds a weight from them that it never uses.
# Kept (empty) so YAML files that set it still load.
_C.MODEL.ROI_RELATION_HEAD.REL_PROP = []
# Training frameworks to train the relation head with, by registered name, stacked in order
# (maskrcnn_benchmark/engine/framework.py; packages such as hml_patch register them when imported).
_C.MODEL.ROI_RELATION_HEAD.FRAMEWORKS = []
# Train with Hierarchical Memory Learning (the "HML" framework of hml_patch; its settings form the
# top-level HML group that hml_patch adds). Same as listing "HML" in FRAMEWORKS.
_C.MODEL.ROI_RELATION_HEAD.HML = False

_C.MODEL.ROI_RELATION_HEAD.TRANSFORMER = CN()
_C.MODEL.ROI_RELATION_HEAD.TRANSFORMER.DROPOUT_RATE = 0.1
_C.MODEL.ROI_RELATION_HEAD.TRANSFORMER.OBJ_LAYER = 4
_C.MODEL.ROI_RELATION_HEAD.TRANSFORMER.REL_LAYER = 2
_C.MODEL.ROI_RELATION_HEAD.TRANSFORMER.NUM_HEAD = 8
_C.MODEL.ROI_RELATION_HEAD.TRANSFORMER.INNER_DIM = 2048
_C.MODEL.ROI_RELATION_HEAD.TRANSFORMER.KEY_DIM = 64
_C.MODEL.ROI_RELATION_HEAD.TRANSFORMER.VAL_DIM = 64

# CausalAnalysisPredictor (and the untreated averages of the MOTIFS / VCTree contexts).
_C.MODEL.ROI_RELATION_HEAD.CAUSAL = CN()
# Register and track the moving averages that TDE / NIE / TE subtract (also in the state_dict).
_C.MODEL.ROI_RELATION_HEAD.CAUSAL.EFFECT_ANALYSIS = False
_C.MODEL.ROI_RELATION_HEAD.CAUSAL.FUSION_TYPE = "sum"  # "sum" or "gate"
_C.MODEL.ROI_RELATION_HEAD.CAUSAL.CONTEXT_LAYER = "motifs"  # "motifs", "vctree" or "vtranse"
# The union extractor's layout branch gets its own MLP (spatial_fc) and multiplies the context.
_C.MODEL.ROI_RELATION_HEAD.CAUSAL.SEPARATE_SPATIAL = False
_C.MODEL.ROI_RELATION_HEAD.CAUSAL.SPATIAL_FOR_VISION = False  # the 32-d box-pair embedding spt_emb
# Test-time logits: "none", "TDE", "NIE" or "TE" (the others need EFFECT_ANALYSIS True in training).
_C.MODEL.ROI_RELATION_HEAD.CAUSAL.EFFECT_TYPE = "none"

# ---------------------------------------------------------------------------
# SOLVER. The effective learning rate is BASE_LR x IMS_PER_BATCH, as in the benchmark.
# ---------------------------------------------------------------------------
_C.SOLVER = CN()
_C.SOLVER.MAX_ITER = 40000
_C.SOLVER.BASE_LR = 0.002
_C.SOLVER.BIAS_LR_FACTOR = 2
_C.SOLVER.MOMENTUM = 0.9
_C.SOLVER.WEIGHT_DECAY = 0.0005
_C.SOLVER.WEIGHT_DECAY_BIAS = 0.0
_C.SOLVER.CLIP_NORM = 5.0  # unused by the benchmark; GRAD_NORM_CLIP is the one applied
_C.SOLVER.GAMMA = 0.1
_C.SOLVER.STEPS = (30000,)
_C.SOLVER.WARMUP_FACTOR = 1.0 / 3
_C.SOLVER.WARMUP_ITERS = 500
_C.SOLVER.WARMUP_METHOD = "linear"
_C.SOLVER.SCHEDULE = CN()
_C.SOLVER.SCHEDULE.TYPE = "WarmupMultiStepLR"  # or "WarmupReduceLROnPlateau"
_C.SOLVER.SCHEDULE.PATIENCE = 2
_C.SOLVER.SCHEDULE.THRESHOLD = 1e-4
_C.SOLVER.SCHEDULE.COOLDOWN = 1
_C.SOLVER.SCHEDULE.FACTOR = 0.5
_C.SOLVER.SCHEDULE.MAX_DECAY_STEP = 7
_C.SOLVER.CHECKPOINT_PERIOD = 2500
_C.SOLVER.GRAD_NORM_CLIP = 5.0
_C.SOLVER.PRINT_GRAD_FREQ = 5000
_C.SOLVER.TO_VAL = True
_C.SOLVER.PRE_VAL = True
_C.SOLVER.VAL_PERIOD = 2500
_C.SOLVER.UPDATE_SCHEDULE_DURING_LOAD = False
_C.SOLVER.IMS_PER_BATCH = 16  # global batch over all processes

# ---------------------------------------------------------------------------
# TEST
# ---------------------------------------------------------------------------
_C.TEST = CN()
_C.TEST.EXPECTED_RESULTS = []  # unused, kept for old YAML files
_C.TEST.EXPECTED_RESULTS_SIGMA_TOL = 4  # unused, kept for old YAML files
_C.TEST.IMS_PER_BATCH = 8  # global batch over all processes
_C.TEST.DETECTIONS_PER_IMG = 100
_C.TEST.SAVE_PROPOSALS = False
_C.TEST.ALLOW_LOAD_FROM_CACHE = True
_C.TEST.CUSTUM_EVAL = False
_C.TEST.CUSTUM_PATH = "."
# Number COCO GT annotations from 0 as the benchmark does (its first GT box can never match).
_C.TEST.COCO_LEGACY_ANN_IDS = False
# Relation tests also write predictions.pth + visual_info.json (for tools/visualize_scene_graph.py).
_C.TEST.SAVE_PREDICTIONS = False
_C.TEST.SAVE_PREDICTIONS_TOP_REL = 100  # relations kept per image in predictions.pth

_C.TEST.BBOX_AUG = CN()
_C.TEST.BBOX_AUG.ENABLED = False
_C.TEST.BBOX_AUG.H_FLIP = False
_C.TEST.BBOX_AUG.SCALES = ()
_C.TEST.BBOX_AUG.MAX_SIZE = 4000
_C.TEST.BBOX_AUG.SCALE_H_FLIP = False

_C.TEST.RELATION = CN()
_C.TEST.RELATION.MULTIPLE_PREDS = False  # read but unused by the benchmark
_C.TEST.RELATION.IOU_THRESHOLD = 0.5
_C.TEST.RELATION.REQUIRE_OVERLAP = True
_C.TEST.RELATION.LATER_NMS_PREDICTION_THRES = 0.3
_C.TEST.RELATION.SYNC_GATHER = False
# Zero-shot triplets file (subject label, object label, predicate) for zR@K; "" = no zero-shot metrics.
_C.TEST.RELATION.ZEROSHOT_TRIPLETS = ""
# Predicate tree file with parent links (fine -> coarse) for the hierarchy metrics HR, mHR, gHR,
# TOR_p, POR_p and the coarse/fine confusion; "" = off (configs/hierarchy/ has VG150's).
_C.TEST.RELATION.PREDICATE_TREE = ""
# gHR@K's partial credits: (coarsening a fine GT to its parent, predicting a sibling of a fine GT).
_C.TEST.RELATION.GRADED_HR_WEIGHTS = (0.5, 0.5)

# ---------------------------------------------------------------------------
# PSG_CLS: the CE7454 image-level relation classification (tools/psg_cls_*.py)
# ---------------------------------------------------------------------------
_C.PSG_CLS = CN()
# The CE7454 data file, relative to DATASETS.DATA_DIR (OpenPSG's data/ layout).
_C.PSG_CLS.DATA_FILE = "psg/psg_cls_basic.json"
# The COCO root that the file's file_name entries are relative to, under DATASETS.DATA_DIR.
_C.PSG_CLS.IMG_DIR = "coco"
# torchvision classifier: "resnet18" or "resnet50" (fc replaced by 56 outputs).
_C.PSG_CLS.ARCH = "resnet50"
# torchvision state dict of the backbone (e.g. ImageNet weights); "" = random initialisation.
_C.PSG_CLS.WEIGHTS = ""
# Images are resized to INPUT_SIZE x INPUT_SIZE.
_C.PSG_CLS.INPUT_SIZE = 224
# The starter kit's schedule: 36 epochs of batch 16, SGD-Nesterov, cosine to MIN_LR per step.
_C.PSG_CLS.EPOCHS = 36
_C.PSG_CLS.BATCH_SIZE = 16
_C.PSG_CLS.BASE_LR = 1e-3
_C.PSG_CLS.MIN_LR = 1e-6
_C.PSG_CLS.MOMENTUM = 0.9
_C.PSG_CLS.WEIGHT_DECAY = 5e-4
# Where the imbalance tricks' class lists come from: "rule" (from the training split's
# image counts, the report's list sizes) or "report" (the report's fixed real-PSG ids).
_C.PSG_CLS.CLASS_LISTS = "rule"
# BCE weight of the low-frequency classes (1.0 = plain BCE; the report uses 1.2).
_C.PSG_CLS.LOW_FREQ_WEIGHT = 1.0
# The report's under/over-sampling of training images instead of a plain permutation.
_C.PSG_CLS.BALANCED_SAMPLER = False
# Probability multiplier of the rare classes before the top 3 (1.0 = none; the report uses 1.1).
_C.PSG_CLS.RARE_MULTIPLIER = 1.0

# ---------------------------------------------------------------------------
# Misc
# ---------------------------------------------------------------------------
_C.OUTPUT_DIR = "."
# >= 0: seed Python, NumPy and torch at start-up so a run can be repeated exactly; -1: unseeded
# (the benchmark's behaviour: NumPy, which samples relation pairs, then differs run to run).
_C.SEED = -1
_C.DETECTED_SGG_DIR = "."
# Word vectors for object and predicate names (a file or folder; never downloaded).
_C.GLOVE_DIR = "."
# Optional user file that replaces the built-in dataset catalog ("" = built-in).
_C.PATHS_CATALOG = ""
_C.PATHS_DATA = ""  # unused, kept for old YAML files
# "float32", or "float16" for torch.amp mixed precision on CUDA.
_C.DTYPE = "float32"
_C.AMP_VERBOSE = False  # unused, kept for old YAML files

# ---------------------------------------------------------------------------
# DISTRIBUTED: multi-process runs started by torchrun
# ---------------------------------------------------------------------------
_C.DISTRIBUTED = CN()
# Seconds the rendezvous and any collective (all-reduce, barrier) wait for the other ranks before
# failing with an error, so that a rank that died or hangs stops the others instead of leaving them
# blocked. Longer than the slowest single-rank step between collectives (rank 0 writing results).
_C.DISTRIBUTED.COLLECTIVE_TIMEOUT_S = 1800.0
