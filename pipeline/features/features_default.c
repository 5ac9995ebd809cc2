/* The built-in feature spec for BehaviorEvent and the field list it is written against (see
 * behavior_features.h; docs/features.md explains the spec line by line). Data only: the spec
 * compiler (features_spec.c) reads this text like any other. */
#include "behavior_features.h"

const features_field_t features_behavior_fields[FEATURES_BF_COUNT] = {
    [FEATURES_BF_EVENT_ID] = {"event_id", FEATURES_FIELD_STRING},
    [FEATURES_BF_EVENT_TYPE] = {"event_type", FEATURES_FIELD_STRING},
    [FEATURES_BF_USER_ID] = {"user_id", FEATURES_FIELD_STRING},
    [FEATURES_BF_ACCOUNT_ID] = {"account_id", FEATURES_FIELD_STRING},
    [FEATURES_BF_DEVICE_ID] = {"device_id", FEATURES_FIELD_STRING},
    [FEATURES_BF_IP] = {"ip", FEATURES_FIELD_STRING},
    [FEATURES_BF_AMOUNT] = {"amount", FEATURES_FIELD_NUMBER},
    [FEATURES_BF_CURRENCY] = {"currency", FEATURES_FIELD_STRING},
    [FEATURES_BF_MERCHANT_ID] = {"merchant_id", FEATURES_FIELD_STRING},
    [FEATURES_BF_MERCHANT_CATEGORY] = {"merchant_category", FEATURES_FIELD_STRING},
    [FEATURES_BF_COUNTRY] = {"country", FEATURES_FIELD_STRING},
    [FEATURES_BF_LATITUDE] = {"latitude", FEATURES_FIELD_NUMBER},
    [FEATURES_BF_LONGITUDE] = {"longitude", FEATURES_FIELD_NUMBER},
    [FEATURES_BF_CHANNEL] = {"channel", FEATURES_FIELD_STRING},
};

/* What docs/features.md explains line by line. */
const char features_default_spec[] =
    "# vigil's built-in feature spec for BehaviorEvent (docs/features.md)\n"
    "entity user user_id\n"
    "entity device device_id\n"
    "entity merchant merchant_id\n"
    "entity ip ip\n"
    "numeric amount.log amount log clip=-20:20\n"
    "numeric has_amount amount present\n"
    "categorical event_type event_type 8\n"
    "categorical channel channel 8\n"
    "categorical merchant_category merchant_category 16\n"
    "categorical currency currency 8\n"
    "hour_of_day\n"
    "count user 1m 1h 24h\n"
    "sum user amount 1m 1h 24h\n"
    "count_if user event_type=LOGIN_FAILED 1h 24h\n"
    "since_last user\n"
    "geo_velocity user latitude longitude\n"
    "zscore user amount\n"
    "novelty user device_id 4\n"
    "novelty user merchant_id 4\n"
    "novelty user country 3\n"
    "count device 1h 24h\n"
    "since_last device\n"
    "count merchant 1h 24h\n"
    "count ip 1h 24h\n"
    "since_last ip\n";
