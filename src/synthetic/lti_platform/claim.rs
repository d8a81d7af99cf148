//! The claim names and role URIs a launch carries (reference §6, §7), spelled once so tests
//! can tamper with claims by name (`LaunchSpec::with_extra_claim(claim::VERSION, …)`).

/// `"1.3.0"`.
pub const VERSION: &str = "https://purl.imsglobal.org/spec/lti/claim/version";
pub const MESSAGE_TYPE: &str = "https://purl.imsglobal.org/spec/lti/claim/message_type";
pub const DEPLOYMENT_ID: &str = "https://purl.imsglobal.org/spec/lti/claim/deployment_id";
pub const TARGET_LINK_URI: &str = "https://purl.imsglobal.org/spec/lti/claim/target_link_uri";
pub const RESOURCE_LINK: &str = "https://purl.imsglobal.org/spec/lti/claim/resource_link";
pub const ROLES: &str = "https://purl.imsglobal.org/spec/lti/claim/roles";
pub const CONTEXT: &str = "https://purl.imsglobal.org/spec/lti/claim/context";
pub const TOOL_PLATFORM: &str = "https://purl.imsglobal.org/spec/lti/claim/tool_platform";
pub const LAUNCH_PRESENTATION: &str =
    "https://purl.imsglobal.org/spec/lti/claim/launch_presentation";
pub const CUSTOM: &str = "https://purl.imsglobal.org/spec/lti/claim/custom";
pub const LIS: &str = "https://purl.imsglobal.org/spec/lti/claim/lis";
pub const NAMES_ROLES: &str = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice";
pub const GRADES: &str = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint";
pub const DEEP_LINKING_SETTINGS: &str =
    "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings";

/// The LTI version every launch claims.
pub const LTI_VERSION: &str = "1.3.0";

pub const ROLE_INSTRUCTOR: &str = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor";
pub const ROLE_LEARNER: &str = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner";
pub const ROLE_MENTOR: &str = "http://purl.imsglobal.org/vocab/lis/v2/membership#Mentor";
pub const ROLE_ADMINISTRATOR: &str =
    "http://purl.imsglobal.org/vocab/lis/v2/membership#Administrator";
/// Canvas "Student View": a fake student the tool must not roster.
pub const ROLE_TEST_USER: &str = "http://purl.imsglobal.org/vocab/lti/system/person#TestUser";

/// The `context.type` of an ordinary course.
pub const CONTEXT_COURSE_OFFERING: &str =
    "http://purl.imsglobal.org/vocab/lis/v2/course#CourseOffering";
