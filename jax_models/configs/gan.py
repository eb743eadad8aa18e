"""The conditional GAN of the augmentation experiment."""


def get_config() -> dict:
    return {
        'seed': 0,
        'class_names': ['akiec', 'bcc', 'bkl', 'df', 'mel', 'nv', 'vasc'],
        'latent': 64,
        'width': 128,
        'batch_size': 64,
        'steps': 4000,
        'max_seconds': 90,
        'g_lr': 2e-4,
        'd_lr': 2e-4,
        # Generated images join the classifier's pool for these classes only.
        'synthetic_classes': ['akiec', 'bcc', 'mel'],
        'per_class': 1000,
    }
