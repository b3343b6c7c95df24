-- Only this port's own tables are dropped: Skyline's ionosphere tables may hold a user's
-- profiles and stay.
DROP TABLE IF EXISTS `ionosphere_training_data`;
DROP TABLE IF EXISTS `ionosphere_fp_timeseries`;
DROP TABLE IF EXISTS `ionosphere_fp_features`;
