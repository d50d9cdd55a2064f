"""The shared object model: kinds, manifests, defaulting, validation, selectors, quantities.

Public entry points (import them from their modules):
    registry.all_kinds / by_kind / by_api_version_kind / resolve / for_message / wrap / unwrap
    manifests.load_manifests / load_text / dump_yaml / dump_json / check_document
    codec.decode / decode_partial / encode
    defaulting.apply_defaults;  validation.validate;  immutability.validate_update
    selectors.parse_label_selector / selector_from_proto / selector_from_map /
              parse_field_selector / field_value / node_selector_matches
    quantity.parse_quantity
See README.md in this directory.
"""
