"""SkinDoc machine learning: lesion classifier, training, calibration, serving and the GAN."""
