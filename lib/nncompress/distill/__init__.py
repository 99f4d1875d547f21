"""Knowledge distillation losses and objectives.

The submodules, each one family of methods: :mod:`.kd` (Hinton et al. 2015: softened
softmax, the KD loss and objective, students on labelled subsets), :mod:`.features`
(FitNets, attention transfer), :mod:`.relational` (RKD, similarity preserving),
:mod:`.ensembles` (generalist + specialists) and :mod:`.peers` (DML, born-again networks,
teacher assistants, label refinery).  Everything is re-exported here; submodules import
their siblings directly, never this package.
"""
from .kd import (KDObjective, add_class_bias, kd_loss, labelled_subset, softmax_t, teacher_logits,
                 train_student, tune_class_bias)
from .features import (FEATURE_LOSSES, FeatureKDObjective, FitNetHintObjective, at_loss, attention_map,
                       fitnet_loss, hint_cosine, make_regressor, teacher_outputs,
                       train_feature_student, train_fitnet)
from .relational import (pairwise_distances, rkd_angle_loss, rkd_angle_potential, rkd_distance_loss,
                         rkd_distance_potential, rkd_loss, similarity_matrix, sp_loss)
from .ensembles import (active_specialists, aggregate_to_group, combination_objective, combine_specialists,
                        confusable_groups, kl_rows, prediction_covariance, soft_target_objective,
                        specialist_data, specialist_from_generalist, specialist_targets,
                        SpecialistObjective, train_specialist)
from .peers import (DMLObjective, PeerGroup, born_again, dml_losses, dml_step, ensemble_probs,
                    label_entropy, label_refinery, refine_labels, teacher_assistant_kd, train_peers)
