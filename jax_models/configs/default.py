"""Default hyper-parameters: the CPU recipe from scratch; the other configs derive from it."""


def get_config() -> dict:
    return {
        'seed': 0,
        'image_size': 96,  # model input, pixels per side
        'canvas': 112,  # stored size that random crops are taken from
        'class_names': ['akiec', 'bcc', 'bkl', 'df', 'mel', 'nv', 'vasc'],
        'malignant': ['akiec', 'bcc', 'mel'],
        'model': {
            'block': 'basic',
            'stem': 16,
            'stem_stride': 2,
            # (channels, blocks, first stride, expansion)
            'stages': [[24, 1, 2, 1], [48, 2, 2, 1], [96, 2, 2, 1], [160, 1, 1, 1]],
            'head': 256,
            'dropout': 0.2,
        },
        'batch_size': 64,
        'epochs': 24,
        'learning_rate': 2e-3,
        'warmup_epochs': 1,
        'weight_decay': 5e-4,
        # Loss weight of class c is freq(c) ** -class_weight_power; the shipped
        # logits subtract log(weight) again so probabilities keep the data prior.
        'class_weight_power': 0.5,
        # Sampling weight of each source (HAM10000 has 3.5x the images of ISIC 2017).
        'source_weights': {'ham10000': 1.0, 'isic2017': 1.5},
        'early_stopping_patience': 6,
        # Decay of a moving average of the weights that competes with them for the
        # checkpoint each epoch (about 1 / (1 - decay) steps of memory); None: off.
        'ema_decay': None,
        # Checkpoint selection: weighted mean of val AUCs (malignant vs benign) per source.
        'selection_weights': {'ham10000': 0.75, 'isic2017': 0.25},
        'augment': {
            'scale': [0.3, 1.0],  # crop area, fraction of the canvas
            'ratio': [0.75, 1.333],  # crop aspect jitter
            'rotate': True,  # any angle plus flips: dermoscopy has no "up"
            'brightness': 0.25,
            'contrast': 0.25,
            'saturation': 0.25,
            'channel_gain': 0.12,  # residual colour cast after colour constancy
            'gamma': 0.2,
            'blur_prob': 0.3,
            'noise': 0.03,
        },
        # GAN images for the rare malignant classes (the ablation's second arm).
        'synthetic': None,  # path to an npz of generated canvases, or None
        'synthetic_fraction': 0.15,  # share of each batch drawn from it when set
        # Knowledge distillation: a checkpoint folder whose soft targets join the label loss.
        'teacher': None,
        'distill_alpha': 0.5,  # share of the loss from the teacher
        'distill_temperature': 2.0,
        'eval_batch_size': 256,
        'ece_bins': 15,
        'urgent_sensitivity': 0.95,
        'soon_sensitivity': 0.99,
    }
