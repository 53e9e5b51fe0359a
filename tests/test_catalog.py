"""The catalog collections through the generated stubs: realms (with the mock's realms that
fail on purpose), hardware profiles and images."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import pytest
from conftest import Api
from google.protobuf import empty_pb2

from deltacloud.v1 import (
    common_pb2,
    hardware_profile_pb2,
    image_pb2,
    instance_pb2,
    realm_pb2,
)
from support import ALICE, MD, MOCK_SCOPE, failure

SCOPE = {"driver": "mock", "provider": "default"}
AVAILABLE = realm_pb2.Realm.STATE_AVAILABLE
HP = common_pb2.HardwareProperty


def refusal(call: object, request: object, metadata: object = MD) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, metadata=metadata)  # type: ignore[operator]
    return caught.value


# ---- realms -----------------------------------------------------------------------------


def test_realms_are_eu_and_us_both_available(api: Api) -> None:
    reply = api.realms.ListRealms(realm_pb2.ListRealmsRequest(), metadata=MD)
    assert list(reply.realms) == [
        realm_pb2.Realm(id="eu", name="Europe", state=AVAILABLE),
        realm_pb2.Realm(id="us", name="United States", state=AVAILABLE),
    ]
    assert reply.next_page_token == ""


def test_get_realm_us(api: Api) -> None:
    realm = api.realms.GetRealm(realm_pb2.GetRealmRequest(id="us"), metadata=MD)
    assert realm == realm_pb2.Realm(id="us", name="United States", state=AVAILABLE)


@pytest.mark.parametrize(("realm_id", "expected"), [("eu", ["eu"]), ("us", ["us"]), ("mars", [])])
def test_list_realms_filtered_on_id(api: Api, realm_id: str, expected: list[str]) -> None:
    reply = api.realms.ListRealms(realm_pb2.ListRealmsRequest(id=realm_id), metadata=MD)
    assert [r.id for r in reply.realms] == expected


def test_get_unknown_realm_is_not_found(api: Api) -> None:
    f = failure(refusal(api.realms.GetRealm, realm_pb2.GetRealmRequest(id="mars")))
    assert (f.code, f.reason) == (grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")
    assert f.metadata == {**SCOPE, "resource_type": "realm", "resource_id": "mars"}


def test_get_realm_without_id_is_missing_field(api: Api) -> None:
    f = failure(refusal(api.realms.GetRealm, realm_pb2.GetRealmRequest()))
    assert (f.code, f.reason, f.metadata) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "MISSING_FIELD",
        {"field": "id", **MOCK_SCOPE},
    )


#: realm id -> (gRPC code, ErrorInfo reason), per the error table of docs/architecture.md.
FAILING_REALMS = {
    "400": (grpc.StatusCode.INVALID_ARGUMENT, "VALIDATION_FAILED"),
    "401": (grpc.StatusCode.UNAUTHENTICATED, "AUTHENTICATION_FAILED"),
    "403": (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED"),
    "404": (grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND"),
    "405": (grpc.StatusCode.FAILED_PRECONDITION, "ACTION_NOT_ALLOWED"),
    "409": (grpc.StatusCode.FAILED_PRECONDITION, "MOCK_CONFLICT"),
    "429": (grpc.StatusCode.RESOURCE_EXHAUSTED, "QUOTA_EXCEEDED"),
    "500": (grpc.StatusCode.INTERNAL, "INTERNAL"),
    "501": (grpc.StatusCode.UNIMPLEMENTED, "NOT_SUPPORTED"),
    "502": (grpc.StatusCode.UNAVAILABLE, "BACKEND_ERROR"),
    "503": (grpc.StatusCode.UNAVAILABLE, "BACKEND_UNAVAILABLE"),
    "504": (grpc.StatusCode.DEADLINE_EXCEEDED, "BACKEND_TIMEOUT"),
}


@pytest.mark.parametrize("how", ["GetRealm", "ListRealms"])
@pytest.mark.parametrize("realm_id", list(FAILING_REALMS))
def test_failing_realm_ids_fail_with_the_matching_code_and_the_server_keeps_serving(
    api: Api, realm_id: str, how: str
) -> None:
    if how == "GetRealm":
        error = refusal(api.realms.GetRealm, realm_pb2.GetRealmRequest(id=realm_id))
    else:
        error = refusal(api.realms.ListRealms, realm_pb2.ListRealmsRequest(id=realm_id))
    f = failure(error)
    assert (f.code, f.reason, f.domain) == (*FAILING_REALMS[realm_id], "deltacloud")
    assert f.metadata["driver"] == "mock"
    assert f.metadata["provider"] == "default"
    # The failure was one call's: the next call is served normally.
    reply = api.realms.ListRealms(realm_pb2.ListRealmsRequest(), metadata=MD)
    assert [r.id for r in reply.realms] == ["eu", "us"]


def test_failing_realm_502_names_the_backend_code(api: Api) -> None:
    f = failure(refusal(api.realms.GetRealm, realm_pb2.GetRealmRequest(id="502")))
    assert f.metadata == {**SCOPE, "backend_code": "502", "realm_id": "502"}


def test_failing_realm_405_names_state_and_allowed_actions(api: Api) -> None:
    f = failure(refusal(api.realms.GetRealm, realm_pb2.GetRealmRequest(id="405")))
    assert f.metadata == {
        **SCOPE,
        "instance_id": "inst0",
        "action": "start",
        "state": "running",
        "allowed_actions": "reboot,stop",
    }


def test_internal_failure_carries_no_traceback(api: Api) -> None:
    error = refusal(api.realms.GetRealm, realm_pb2.GetRealmRequest(id="500"))
    f = failure(error)
    assert f.code == grpc.StatusCode.INTERNAL
    assert f.message == "failure requested on purpose through mock realm 500"
    texts = [error.details() or "", f.message, *f.metadata.values()]  # type: ignore[attr-defined]
    texts += [str(v) for _, v in error.trailing_metadata() or ()]  # type: ignore[attr-defined]
    for text in texts:
        assert "Traceback" not in text
        assert 'File "' not in text
        assert ".py" not in text


# ---- hardware profiles ------------------------------------------------------------------


def num(value: float) -> common_pb2.PropertyValue:
    return common_pb2.PropertyValue(number=value)


def text(value: str) -> common_pb2.PropertyValue:
    return common_pb2.PropertyValue(text=value)


def fixed(unit: str, value: common_pb2.PropertyValue) -> common_pb2.HardwareProperty:
    return HP(kind=HP.KIND_FIXED, unit=unit, default_value=value)


PROFILES = {
    "m1-small": hardware_profile_pb2.HardwareProfile(
        id="m1-small",
        name="m1-small",
        cpu=fixed("count", num(1)),
        memory=fixed("MB", num(1740.8)),
        storage=fixed("GB", num(160)),
        architecture=fixed("label", text("i386")),
    ),
    "m1-large": hardware_profile_pb2.HardwareProfile(
        id="m1-large",
        name="m1-large",
        cpu=HP(kind=HP.KIND_RANGE, unit="count", default_value=num(1), first=num(1), last=num(6)),
        memory=HP(
            kind=HP.KIND_RANGE,
            unit="MB",
            default_value=num(10240),
            first=num(7680),
            last=num(15360),
        ),
        storage=HP(
            kind=HP.KIND_ENUM, unit="GB", default_value=num(850), values=[num(850), num(1024)]
        ),
        architecture=fixed("label", text("x86_64")),
    ),
    "m1-xlarge": hardware_profile_pb2.HardwareProfile(
        id="m1-xlarge",
        name="m1-xlarge",
        cpu=fixed("count", num(4)),
        memory=HP(
            kind=HP.KIND_RANGE,
            unit="MB",
            default_value=num(12288),
            first=num(12288),
            last=num(32768),
        ),
        storage=HP(
            kind=HP.KIND_ENUM,
            unit="GB",
            default_value=num(1024),
            values=[num(1024), num(2048), num(4096)],
        ),
        architecture=fixed("label", text("x86_64")),
    ),
    "opaque": hardware_profile_pb2.HardwareProfile(id="opaque", name="opaque"),
}


def test_the_mock_has_exactly_four_hardware_profiles_listed_in_id_order(api: Api) -> None:
    reply = api.hardware_profiles.ListHardwareProfiles(
        hardware_profile_pb2.ListHardwareProfilesRequest(), metadata=MD
    )
    # Lists are served in the natural order of ids, whatever order the driver declares.
    assert list(reply.hardware_profiles) == [
        PROFILES[p] for p in ("m1-large", "m1-small", "m1-xlarge", "opaque")
    ]


@pytest.mark.parametrize("profile_id", list(PROFILES))
def test_get_hardware_profile_describes_kinds_units_values_and_defaults(
    api: Api, profile_id: str
) -> None:
    profile = api.hardware_profiles.GetHardwareProfile(
        hardware_profile_pb2.GetHardwareProfileRequest(id=profile_id), metadata=MD
    )
    assert profile == PROFILES[profile_id]


def test_opaque_profile_describes_no_property(api: Api) -> None:
    profile = api.hardware_profiles.GetHardwareProfile(
        hardware_profile_pb2.GetHardwareProfileRequest(id="opaque"), metadata=MD
    )
    for prop in ("cpu", "memory", "storage", "architecture"):
        assert not profile.HasField(prop)


@pytest.mark.parametrize(
    ("architecture", "expected"),
    [
        ("x86_64", ["m1-large", "m1-xlarge"]),
        ("i386", ["m1-small"]),
        ("sparc", []),
    ],
)
def test_hardware_profiles_filtered_on_architecture(
    api: Api, architecture: str, expected: list[str]
) -> None:
    reply = api.hardware_profiles.ListHardwareProfiles(
        hardware_profile_pb2.ListHardwareProfilesRequest(architecture=architecture), metadata=MD
    )
    assert [p.id for p in reply.hardware_profiles] == expected


def test_hardware_profiles_filtered_on_id(api: Api) -> None:
    reply = api.hardware_profiles.ListHardwareProfiles(
        hardware_profile_pb2.ListHardwareProfilesRequest(id="m1-xlarge"), metadata=MD
    )
    assert list(reply.hardware_profiles) == [PROFILES["m1-xlarge"]]


def test_get_unknown_hardware_profile_is_not_found(api: Api) -> None:
    error = refusal(
        api.hardware_profiles.GetHardwareProfile,
        hardware_profile_pb2.GetHardwareProfileRequest(id="m9-huge"),
    )
    f = failure(error)
    assert (f.code, f.reason) == (grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")
    assert f.metadata == {**SCOPE, "resource_type": "hardware_profile", "resource_id": "m9-huge"}


# ---- images -----------------------------------------------------------------------------


def image_ids(api: Api, **filters: str) -> list[str]:
    reply = api.images.ListImages(image_pb2.ListImagesRequest(**filters), metadata=MD)
    return [i.id for i in reply.images]


EPOCH = datetime(2010, 1, 1, tzinfo=UTC)
IMAGES = {
    "img1": ("Fedora 10", "fedoraproject", "Fedora 10 (64 bit)", "x86_64"),
    "img2": ("Fedora 10", "fedoraproject", "Fedora 10 (32 bit)", "i386"),
    "img3": ("JBoss", "mockuser", "JBoss application server on Fedora (32 bit)", "i386"),
}


def test_the_mock_has_exactly_images_img1_to_img3(api: Api) -> None:
    reply = api.images.ListImages(image_pb2.ListImagesRequest(), metadata=MD)
    assert {i.id: (i.name, i.owner_id, i.description, i.architecture) for i in reply.images} == (
        IMAGES
    )
    assert [i.id for i in reply.images] == ["img1", "img2", "img3"]
    for image in reply.images:
        assert image.state == image_pb2.Image.STATE_AVAILABLE
        assert image.root_type == "persistent"
        assert image.create_time.ToDatetime(tzinfo=UTC) == EPOCH


@pytest.mark.parametrize(
    ("image_id", "profiles"),
    [
        ("img1", ["m1-large", "m1-xlarge", "opaque"]),
        ("img2", ["m1-small", "opaque"]),
        ("img3", ["m1-small", "opaque"]),
    ],
)
def test_an_image_lists_the_profiles_matching_its_architecture(
    api: Api, image_id: str, profiles: list[str]
) -> None:
    image = api.images.GetImage(image_pb2.GetImageRequest(id=image_id), metadata=MD)
    assert list(image.hardware_profile_ids) == profiles


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"architecture": "x86_64"}, ["img1"]),
        ({"architecture": "i386"}, ["img2", "img3"]),
        ({"architecture": "sparc"}, []),
        ({"owner_id": "fedoraproject"}, ["img1", "img2"]),
        ({"owner_id": "mockuser"}, ["img3"]),
        ({"owner_id": "fedoraproject", "architecture": "i386"}, ["img2"]),
        ({"id": "img2"}, ["img2"]),
        ({"id": "img9"}, []),
    ],
    ids=lambda v: repr(v) if isinstance(v, dict) else "",
)
def test_list_images_filters(api: Api, filters: dict[str, str], expected: list[str]) -> None:
    assert image_ids(api, **filters) == expected


def test_get_unknown_image_is_not_found(api: Api) -> None:
    f = failure(refusal(api.images.GetImage, image_pb2.GetImageRequest(id="img9")))
    assert (f.code, f.metadata) == (
        grpc.StatusCode.NOT_FOUND,
        {**SCOPE, "resource_type": "image", "resource_id": "img9"},
    )


def test_create_image_from_an_instance_is_owned_by_the_caller(fresh_api: Api) -> None:
    image = fresh_api.images.CreateImage(
        image_pb2.CreateImageRequest(instance_id="inst1"), metadata=MD
    )
    assert (image.id, image.owner_id, image.name, image.architecture) == (
        "img4",
        "mockuser",
        "Image of MockUserInstance",
        "i386",
    )
    assert image.state == image_pb2.Image.STATE_AVAILABLE
    assert image_ids(fresh_api, owner_id="mockuser") == ["img3", "img4"]
    assert fresh_api.images.GetImage(image_pb2.GetImageRequest(id="img4"), metadata=MD) == image


def test_create_image_with_name_and_description(fresh_api: Api) -> None:
    image = fresh_api.images.CreateImage(
        image_pb2.CreateImageRequest(instance_id="inst0", name="golden", description="v1"),
        metadata=MD,
    )
    assert (image.name, image.description, image.architecture) == ("golden", "v1", "x86_64")


def test_an_image_created_by_another_user_belongs_to_that_user(fresh_api: Api) -> None:
    [inst] = fresh_api.instances.CreateInstance(
        instance_pb2.CreateInstanceRequest(image_id="img2"), metadata=ALICE
    ).instances
    image = fresh_api.images.CreateImage(
        image_pb2.CreateImageRequest(instance_id=inst.id, name="alice's"), metadata=ALICE
    )
    assert (image.id, image.owner_id) == ("img4", "alice")
    # Images are shared: mockuser sees it, owned by alice, and may not delete it.
    assert image_ids(fresh_api, owner_id="alice") == ["img4"]
    f = failure(refusal(fresh_api.images.DeleteImage, image_pb2.DeleteImageRequest(id="img4")))
    assert f.code == grpc.StatusCode.PERMISSION_DENIED


def test_a_deleted_image_id_never_names_another_image(fresh_api: Api) -> None:
    # mockuser deletes its img3, which inst1 was made from; alice's next image must not
    # become img3, or inst1 would report alice's image as its own.
    fresh_api.images.DeleteImage(image_pb2.DeleteImageRequest(id="img3"), metadata=MD)
    [inst] = fresh_api.instances.CreateInstance(
        instance_pb2.CreateInstanceRequest(image_id="img1"), metadata=ALICE
    ).instances
    alices = fresh_api.images.CreateImage(
        image_pb2.CreateImageRequest(instance_id=inst.id), metadata=ALICE
    )
    assert alices.id == "img4"
    # inst1 (i386) still images as i386, though the image it was made from is gone.
    image = fresh_api.images.CreateImage(
        image_pb2.CreateImageRequest(instance_id="inst1"), metadata=MD
    )
    assert (image.id, image.architecture) == ("img5", "i386")
    fresh_api.images.DeleteImage(image_pb2.DeleteImageRequest(id="img5"), metadata=MD)
    again = fresh_api.images.CreateImage(
        image_pb2.CreateImageRequest(instance_id="inst1"), metadata=MD
    )
    assert again.id == "img6"


def test_inst3_cannot_be_imaged(api: Api) -> None:
    error = refusal(api.images.CreateImage, image_pb2.CreateImageRequest(instance_id="inst3"))
    f = failure(error)
    assert (f.code, f.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "IMAGE_CREATION_NOT_ALLOWED")
    assert f.metadata == {**SCOPE, "instance_id": "inst3"}
    assert image_ids(api) == ["img1", "img2", "img3"]


def test_create_image_from_unknown_instance_is_not_found(api: Api) -> None:
    error = refusal(api.images.CreateImage, image_pb2.CreateImageRequest(instance_id="inst99"))
    f = failure(error)
    assert (f.code, f.metadata["resource_type"], f.metadata["resource_id"]) == (
        grpc.StatusCode.NOT_FOUND,
        "instance",
        "inst99",
    )


def test_create_image_without_instance_id_is_missing_field(api: Api) -> None:
    f = failure(refusal(api.images.CreateImage, image_pb2.CreateImageRequest(name="x")))
    assert (f.code, f.reason, f.metadata) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "MISSING_FIELD",
        {"field": "instance_id", **MOCK_SCOPE},
    )


def test_delete_own_image_removes_it(fresh_api: Api) -> None:
    image = fresh_api.images.CreateImage(
        image_pb2.CreateImageRequest(instance_id="inst1"), metadata=MD
    )
    reply = fresh_api.images.DeleteImage(image_pb2.DeleteImageRequest(id=image.id), metadata=MD)
    assert reply == empty_pb2.Empty()
    assert image_ids(fresh_api) == ["img1", "img2", "img3"]
    f = failure(refusal(fresh_api.images.GetImage, image_pb2.GetImageRequest(id=image.id)))
    assert f.code == grpc.StatusCode.NOT_FOUND


def test_delete_fixture_image_owned_by_mockuser_works(fresh_api: Api) -> None:
    fresh_api.images.DeleteImage(image_pb2.DeleteImageRequest(id="img3"), metadata=MD)
    assert image_ids(fresh_api) == ["img1", "img2"]


def test_deleting_another_owners_image_is_permission_denied(api: Api) -> None:
    f = failure(refusal(api.images.DeleteImage, image_pb2.DeleteImageRequest(id="img1")))
    assert (f.code, f.reason) == (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED")
    assert f.metadata == {**SCOPE, "image_id": "img1"}
    assert image_ids(api) == ["img1", "img2", "img3"]


def test_delete_unknown_image_is_not_found(api: Api) -> None:
    f = failure(refusal(api.images.DeleteImage, image_pb2.DeleteImageRequest(id="img9")))
    assert (f.code, f.metadata["resource_id"]) == (grpc.StatusCode.NOT_FOUND, "img9")
