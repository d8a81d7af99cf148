//! Names, subjects and places a synthetic district is made of.

pub(super) const SUBJECTS: [Subject; 14] = [
    Subject::new(
        "English Language Arts",
        "ELA",
        "English Language and Literature",
        "01001",
    ),
    Subject::new("Algebra I", "ALG1", "Mathematics", "02052"),
    Subject::new("Geometry", "GEOM", "Mathematics", "02072"),
    Subject::new("Biology", "BIO", "Life and Physical Sciences", "03051"),
    Subject::new("Chemistry", "CHEM", "Life and Physical Sciences", "03101"),
    Subject::new(
        "World History",
        "WHIS",
        "Social Sciences and History",
        "04051",
    ),
    Subject::new(
        "U.S. History",
        "USH",
        "Social Sciences and History",
        "04101",
    ),
    Subject::new("Economics", "ECON", "Social Sciences and History", "04201"),
    Subject::new("Spanish I", "SPA1", "World Languages", "06101"),
    Subject::new("Visual Art", "ART", "Fine and Performing Arts", "05154"),
    Subject::new("Music", "MUS", "Fine and Performing Arts", "05101"),
    Subject::new(
        "Physical Education",
        "PE",
        "Physical, Health, and Safety Education",
        "08001",
    ),
    Subject::new(
        "Health",
        "HLTH",
        "Physical, Health, and Safety Education",
        "08051",
    ),
    Subject::new(
        "Computer Science",
        "CS",
        "Computer and Information Sciences",
        "10011",
    ),
];

pub(super) const GRADE_BANDS: [(&str, &[&str]); 3] = [
    ("High", &["09", "10", "11", "12"]),
    ("Middle", &["06", "07", "08"]),
    ("Elementary", &["KG", "01", "02", "03", "04", "05"]),
];

pub(super) const PLACES: &[&str] = &[
    "Cedar Ridge",
    "Lakeview",
    "Maple Grove",
    "Riverside",
    "Oak Hollow",
    "Pine Crest",
    "Willow Creek",
    "Summit",
    "Eastgate",
    "Harbor Point",
    "Meadowbrook",
    "Stonebridge",
];

pub(super) const GIVEN_NAMES: &[&str] = &[
    "Mary", "James", "Olivia", "Liam", "Emma", "Noah", "Ava", "Elijah", "Sophia", "Mateo",
    "Isabella", "Lucas", "Mia", "Levi", "Amelia", "Ezra", "Harper", "Asher", "Aaliyah", "Kai",
    "Camila", "Hiro", "Priya", "Omar", "Fatima", "Diego", "Chloe", "Wei", "Zoe", "Andre",
];

pub(super) const FAMILY_NAMES: &[&str] = &[
    "Archer", "Hughes", "Garcia", "Nguyen", "Smith", "Johnson", "Patel", "Kim", "Martinez",
    "Brown", "Okafor", "Lopez", "Wilson", "Anderson", "Chen", "Rossi", "Khan", "Silva", "Murphy",
    "Cohen", "Novak", "Tanaka", "Haddad", "Jensen", "Reyes", "Walker",
];

pub(super) struct Subject {
    pub(super) title: &'static str,
    pub(super) code: &'static str,
    pub(super) area: &'static str,
    pub(super) sced: &'static str,
}

impl Subject {
    const fn new(
        title: &'static str,
        code: &'static str,
        area: &'static str,
        sced: &'static str,
    ) -> Self {
        Self {
            title,
            code,
            area,
            sced,
        }
    }
}
